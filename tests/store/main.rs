//! The store suite, run against every backend (SQLite always; PostgreSQL where it answers), each
//! test in a fresh database.

mod databases;
mod events;
mod instances;
mod isolation;
mod outbox;
