//! `slack-bot` destinations: messages through `chat.postMessage` with a bot token, one thread per
//! issue or pull request, its parent kept current with `chat.update`, and exactly once.
//!
//! - **Threads.** The first row about an issue takes the thread's parent slot (a unique insert in
//!   the store, so instances agree) and posts the parent: a card with the issue's state, labels
//!   and assignees. Rows about it that come while the parent is being posted wait
//!   ([`Outcome::Defer`]); so does a row while an older row about the same issue is still pending
//!   and no thread exists (a comment claimed before its issue's `opened`). Later rows reply in
//!   the thread and update the card when the issue changed.
//! - **Exactly once.** Every message carries metadata (`herald_delivery`: delivery id,
//!   destination, outbox row, role). A row whose earlier attempt may have arrived comes back
//!   with [`Delivery::interrupted`]; its message is then looked for in the channel or the thread
//!   before it is sent again ([`Guarantee::CheckedResend`]).
//! - **Once per issue.** A label added later announces an issue that has no thread yet; when it
//!   has one, it was announced already and nothing is sent.
//! - **Coalescing** (`coalesce = "10s"` on a route): a row about an issue waits for the window,
//!   then tells the rows about the same issue received within it in one message, and the newest
//!   snapshot in one card update; those rows then send nothing themselves.
//! - **Reminders** are armed, re-armed and cancelled here as events pass (see `reminders`).

use std::sync::Arc;
use std::time::Duration;

use super::api::SlackApi;
use super::card::Card;
use super::reminders;
use super::render::{Presentation, SlackMessage, also_block, render, summary};
use super::routing::{RowRoute, SlackRouting};
use super::view::Payload;
use crate::sinks::{BoxFuture, Delivery, Guarantee, Outcome, Sink};
use crate::store::{IssueKey, ParentSlot, Store, StoreError, ThreadRow};
use crate::time_util::{duration_ms, now_ms};

/// How long a row waits before looking again for a parent being posted.
const WAIT_FOR_PARENT: Duration = Duration::from_secs(1);
/// An older row about the same issue due within this is waited for; one further off in its retry
/// schedule is not.
const EARLIER_WITHIN_MS: i64 = 60_000;

/// A Slack bot destination.
pub struct SlackBot {
    api: SlackApi,
    channel: String,
    destination: Arc<str>,
    routing: SlackRouting,
    store: Store,
    /// How long a row holds a thread's parent slot before another may take it over.
    claim: Duration,
}

/// What role a message plays, in its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A thread's parent (the card).
    Parent,
    /// A reply in a thread.
    Reply,
    /// A message in the channel.
    Message,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Parent => "parent",
            Self::Reply => "reply",
            Self::Message => "message",
        }
    }
}

/// An event about an issue or pull request, with its thread key.
struct About<'a> {
    /// Lower-cased, for the key.
    key_repository: String,
    /// As stored with the events (the outbox is searched with it).
    stored_repository: &'a str,
    number: i64,
}

/// What a row whose event another row's message tells (`told`: that row and its status) does
/// instead of sending; `None` when it sends its own message.
fn told_elsewhere(row: i64, told: Option<(i64, String)>) -> Option<Result<(), Outcome>> {
    let (leader, status) = told.filter(|(leader, _)| *leader != row)?;
    match status.as_str() {
        "delivered" => Some(Ok(())),
        "pending" => Some(Err(Outcome::Defer {
            after: WAIT_FOR_PARENT,
            reason: format!("told in the message of row {leader}, not sent yet"),
        })),
        // The message that was to tell it never went: tell it alone.
        _ => None,
    }
}

fn store_outcome(error: &StoreError) -> Outcome {
    Outcome::Retry {
        after: None,
        reason: format!("store: {error}"),
    }
}

fn is_close(event: &str, payload: &Payload<'_>) -> bool {
    matches!(event, "issues" | "pull_request") && payload.action() == "closed"
}

/// Events whose message is the announcement of the item itself.
fn opens(event: &str, payload: &Payload<'_>, late: bool) -> bool {
    late || (matches!(event, "issues" | "pull_request") && payload.action() == "opened")
}

mod send;

impl SlackBot {
    pub fn new(
        api: SlackApi,
        channel: String,
        destination: Arc<str>,
        routing: SlackRouting,
        store: Store,
        timeout: Duration,
    ) -> Self {
        Self {
            api,
            channel,
            destination,
            routing,
            store,
            claim: timeout * 2 + Duration::from_secs(10),
        }
    }

    fn key<'k>(&'k self, about: &'k About<'_>) -> IssueKey<'k> {
        IssueKey {
            destination: &self.destination,
            repository: &about.key_repository,
            number: about.number,
        }
    }

    async fn deliver_one(&self, delivery: &Delivery) -> Outcome {
        match self.try_deliver(delivery).await {
            Ok(()) => Outcome::Delivered,
            Err(outcome) => outcome,
        }
    }

    async fn try_deliver(&self, delivery: &Delivery) -> Result<(), Outcome> {
        let event = &delivery.event;
        let destination = &*self.destination;
        let told = self
            .store
            .coalesced_into(destination, delivery.row)
            .await
            .map_err(|e| store_outcome(&e))?;
        if let Some(answer) = told_elsewhere(delivery.row, told) {
            return answer;
        }
        let payload = Payload::parse(&event.payload);
        let route = self.routing.of(destination, event);
        let about = match (&event.repository, event.issue_number, payload.item()) {
            (Some(repository), Some(number), Some(_))
                if matches!(
                    event.event.as_str(),
                    "issues" | "pull_request" | "issue_comment"
                ) =>
            {
                Some(About {
                    key_repository: repository.to_lowercase(),
                    stored_repository: repository,
                    number,
                })
            }
            _ => None,
        };
        let Some(about) = about else {
            let message = self.message(
                delivery,
                &payload,
                &route,
                route.mention().as_deref(),
                Vec::new(),
            )?;
            return self
                .send_once(delivery, Role::Message, None, &message, false)
                .await
                .map(drop);
        };
        if let Some(window) = route.coalesce() {
            let until = event.received_at.saturating_add(duration_ms(window));
            let now = now_ms();
            if now < until {
                return Err(Outcome::Defer {
                    after: Duration::from_millis(u64::try_from(until - now).unwrap_or(0)),
                    reason: "coalescing events about this issue".to_owned(),
                });
            }
        }
        let sent = if route.thread() {
            self.threaded(delivery, &payload, &route, &about).await
        } else {
            self.unthreaded(delivery, &payload, &route, &about).await
        };
        if sent.is_ok() {
            // After the message: a reminder armed now finds the thread it belongs in.
            let key = self.key(&about);
            reminders::track(&self.store, key, &event.event, &payload, &route).await;
        }
        sent
    }

    /// A destination whose routes keep issues out of threads: every event in the channel, a
    /// late label announcing an issue once.
    async fn unthreaded(
        &self,
        delivery: &Delivery,
        payload: &Payload<'_>,
        route: &RowRoute<'_>,
        about: &About<'_>,
    ) -> Result<(), Outcome> {
        let remembers = opens(&delivery.event.event, payload, false)
            && self.routing.may_announce_late(&self.destination);
        if route.late || remembers {
            let first = self
                .store
                .announce_once(self.key(about), delivery.row, now_ms())
                .await
                .map_err(|e| store_outcome(&e))?;
            if route.late && !first {
                return Ok(());
            }
        }
        if let Some(answer) = self.claim_own_message(delivery).await? {
            return answer;
        }
        let also: Vec<String> = self
            .burst(delivery, route, about)
            .await?
            .iter()
            .map(|(_, name, text)| summary(name, &Payload::parse(text)))
            .collect();
        let message = self.message(delivery, payload, route, route.mention().as_deref(), also)?;
        self.send_once(delivery, Role::Message, None, &message, false)
            .await
            .map(drop)
    }

    async fn threaded(
        &self,
        delivery: &Delivery,
        payload: &Payload<'_>,
        route: &RowRoute<'_>,
        about: &About<'_>,
    ) -> Result<(), Outcome> {
        let key = self.key(about);
        let existing = self
            .store
            .slack_thread(key)
            .await
            .map_err(|e| store_outcome(&e))?;
        if route.late
            && existing
                .as_ref()
                .is_some_and(|thread| thread.parent_row != delivery.row)
        {
            tracing::debug!(
                row = delivery.row,
                destination = %self.destination,
                delivery_id = %delivery.event.delivery_id,
                event = %delivery.event.event,
                "issue already announced in this destination"
            );
            return Ok(());
        }
        let thread = match existing {
            Some(thread) if thread.parent_ts.is_some() => thread,
            _ => {
                let earlier = if existing.is_none() {
                    self.store
                        .earlier_pending_row(
                            &self.destination,
                            about.stored_repository,
                            about.number,
                            delivery.row,
                            now_ms().saturating_add(EARLIER_WITHIN_MS),
                        )
                        .await
                        .map_err(|e| store_outcome(&e))?
                } else {
                    None
                };
                if let Some(earlier) = earlier {
                    return Err(Outcome::Defer {
                        after: WAIT_FOR_PARENT,
                        reason: format!(
                            "row {earlier} about the same issue starts its thread first"
                        ),
                    });
                }
                let slot = self
                    .store
                    .take_parent_slot(
                        key,
                        &self.channel,
                        delivery.row,
                        true,
                        now_ms(),
                        duration_ms(self.claim),
                    )
                    .await
                    .map_err(|e| store_outcome(&e))?;
                match slot {
                    ParentSlot::Posted(thread) => thread,
                    ParentSlot::Taken(thread) => {
                        return Err(Outcome::Defer {
                            after: WAIT_FOR_PARENT,
                            reason: format!(
                                "waiting for row {} to post the thread's parent",
                                thread.parent_row
                            ),
                        });
                    }
                    ParentSlot::Ours { fresh, .. } => {
                        return self
                            .start_thread(delivery, payload, route, about, fresh)
                            .await;
                    }
                }
            }
        };
        if let Some(answer) = self.claim_own_message(delivery).await? {
            return answer;
        }
        self.reply(delivery, payload, route, about, &thread).await
    }

    /// Posts the parent (this row's slot), then this row's own message in the thread unless the
    /// parent is its message (an issue opened, or announced by a label added later).
    async fn start_thread(
        &self,
        delivery: &Delivery,
        payload: &Payload<'_>,
        route: &RowRoute<'_>,
        about: &About<'_>,
        fresh: bool,
    ) -> Result<(), Outcome> {
        let event = &delivery.event;
        if let Some(answer) = self.claim_own_message(delivery).await? {
            return answer;
        }
        let burst = self.burst(delivery, route, about).await?;
        let newest = burst
            .iter()
            .filter_map(|(_, name, text)| Card::from_payload(name, &Payload::parse(text)))
            .chain(Card::from_payload(&event.event, payload))
            .max_by_key(|card| card.updated_at);
        let Some(mut card) = newest else {
            return Err(Outcome::Permanent {
                reason: "the event names an issue but carries no issue to show".to_owned(),
            });
        };
        let first = Card::from_payload(&event.event, payload);
        if let Some(first) = &first {
            card.excerpt.clone_from(&first.excerpt);
        }
        let mention = route.mention();
        card.mention.clone_from(&mention);
        let opening = opens(&event.event, payload, route.late);
        let also: Vec<String> = burst
            .iter()
            .map(|(_, name, text)| summary(name, &Payload::parse(text)))
            .collect();
        // A route's template shapes the announcement: that message is then the parent, kept as
        // it was posted (the state is still tracked, but not redrawn over the template).
        card.templated = opening && route.template().is_some();
        let parent = if card.templated {
            self.message(delivery, payload, route, mention.as_deref(), also.clone())?
        } else {
            let mut parent = card.render(mention.as_deref());
            if opening && !also.is_empty() {
                parent.blocks.push(also_block(&also));
            }
            parent
        };
        // A slot taken over (or held before) may have a parent posted by an attempt that never
        // recorded it: look for any parent of this issue first.
        let posted = self
            .send_once_as(delivery, Role::Parent, None, &parent, false, !fresh, about)
            .await?;
        let card_json = serde_json::to_string(&card).unwrap_or_default();
        let key = self.key(about);
        let held = self
            .store
            .set_thread_parent(
                key,
                delivery.row,
                &posted.ts,
                &card_json,
                card.updated_at,
                now_ms(),
            )
            .await
            .map_err(|e| store_outcome(&e))?;
        if !held {
            tracing::warn!(
                row = delivery.row,
                destination = %self.destination,
                delivery_id = %delivery.event.delivery_id,
                event = %delivery.event.event,
                "another row took over this thread's parent slot while its parent was posted"
            );
        }
        if opening {
            return Ok(());
        }
        let message = self.message(delivery, payload, route, None, also)?;
        let broadcast = route.also_send_to_channel() && is_close(&event.event, payload);
        self.send_once(delivery, Role::Reply, Some(&posted.ts), &message, broadcast)
            .await
            .map(drop)
    }

    /// This row's message in an existing thread, then the parent brought up to date.
    async fn reply(
        &self,
        delivery: &Delivery,
        payload: &Payload<'_>,
        route: &RowRoute<'_>,
        about: &About<'_>,
        thread: &ThreadRow,
    ) -> Result<(), Outcome> {
        let event = &delivery.event;
        if thread.channel != self.channel {
            // The destination moved to another channel: the old thread is out of reach.
            let message = self.message(
                delivery,
                payload,
                route,
                route.mention().as_deref(),
                Vec::new(),
            )?;
            return self
                .send_once(delivery, Role::Message, None, &message, false)
                .await
                .map(drop);
        }
        let parent_ts = thread.parent_ts.as_deref().unwrap_or_default();
        let burst = self.burst(delivery, route, about).await?;
        if opens(&event.event, payload, false) {
            // The thread started from a later event (a comment that came first): its parent
            // already shows the issue, so the opening only brings it up to date.
            if let Some(card) = Card::from_payload(&event.event, payload) {
                self.refresh_parent(about, thread, card).await;
            }
            return Ok(());
        }
        let also: Vec<String> = burst
            .iter()
            .map(|(_, name, text)| summary(name, &Payload::parse(text)))
            .collect();
        // In a thread, only a label that makes a route with a mention hold pings (`P0` added).
        let mention = route.newly_mention();
        let message = self.message(delivery, payload, route, mention.as_deref(), also)?;
        let broadcast = route.also_send_to_channel() && is_close(&event.event, payload);
        self.send_once(delivery, Role::Reply, Some(parent_ts), &message, broadcast)
            .await?;
        let newest = burst
            .iter()
            .filter_map(|(_, name, text)| Card::from_payload(name, &Payload::parse(text)))
            .chain(Card::from_payload(&event.event, payload))
            .max_by_key(|card| card.updated_at);
        if let Some(newest) = newest {
            self.refresh_parent(about, thread, newest).await;
        }
        Ok(())
    }

    /// Updates the parent when `newest` shows something it does not (a failure is logged: the
    /// next event about the issue redraws it).
    async fn refresh_parent(&self, about: &About<'_>, thread: &ThreadRow, newest: Card) {
        let Some(shown) = thread
            .card
            .as_deref()
            .and_then(|text| serde_json::from_str::<Card>(text).ok())
        else {
            return;
        };
        if newest.updated_at < shown.updated_at {
            return;
        }
        let card = shown.refreshed(newest);
        if card.looks_like(&shown) || shown.templated {
            return;
        }
        let text = serde_json::to_string(&card).unwrap_or_default();
        match self
            .store
            .update_thread_card(self.key(about), &text, card.updated_at, now_ms())
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(destination = %self.destination, error = %error, "recording a thread's state failed");
                return;
            }
        }
        let message = card.render(card.mention.as_deref());
        let parent_ts = thread.parent_ts.as_deref().unwrap_or_default();
        if let Err(outcome) = self
            .api
            .update(&thread.channel, parent_ts, &message.text, &message.blocks)
            .await
        {
            tracing::warn!(
                destination = %self.destination,
                reason = outcome.reason(),
                "updating a thread's parent failed; the next event about the issue redraws it"
            );
        }
    }

    /// Claims this row's event for the message it is about to send, unless an earlier row's
    /// burst tells it already (a burst covers rows while they wait for their thread, so the
    /// check at the start of the attempt can be stale by now). `Some` is what to answer instead
    /// of sending.
    async fn claim_own_message(
        &self,
        delivery: &Delivery,
    ) -> Result<Option<Result<(), Outcome>>, Outcome> {
        let told = self
            .store
            .claim_own_message(&self.destination, delivery.row)
            .await
            .map_err(|e| store_outcome(&e))?;
        Ok(told_elsewhere(delivery.row, told))
    }

    /// The rows told with this one (a coalesced burst), when its routes coalesce.
    async fn burst(
        &self,
        delivery: &Delivery,
        route: &RowRoute<'_>,
        about: &About<'_>,
    ) -> Result<Vec<(i64, String, String)>, Outcome> {
        let Some(window) = route.coalesce() else {
            return Ok(Vec::new());
        };
        let until = delivery
            .event
            .received_at
            .saturating_add(duration_ms(window));
        self.store
            .coalesce_burst(
                &self.destination,
                about.stored_repository,
                about.number,
                delivery.row,
                until,
            )
            .await
            .map_err(|e| store_outcome(&e))
    }

    /// The row's own message: the route's template, or the built-in message.
    fn message(
        &self,
        delivery: &Delivery,
        payload: &Payload<'_>,
        route: &RowRoute<'_>,
        mention: Option<&str>,
        also: Vec<String>,
    ) -> Result<SlackMessage, Outcome> {
        let event = &delivery.event.event;
        if let Some(index) = route.template()
            && let Some(rendered) = self
                .routing
                .templates
                .render(index, event, payload, mention, route.late)
        {
            return rendered.map_err(|reason| Outcome::Permanent { reason });
        }
        let how = Presentation {
            mention,
            late: route.late,
            also,
        };
        Ok(render(event, payload, &how))
    }
}

impl Sink for SlackBot {
    fn kind(&self) -> &'static str {
        "slack-bot"
    }

    fn guarantee(&self) -> Guarantee {
        // Slack can be asked what was posted: messages carry their row in their metadata.
        Guarantee::CheckedResend
    }

    fn deliver<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(async move {
            let mut outcomes = Vec::with_capacity(batch.len());
            for delivery in batch {
                outcomes.push(self.deliver_one(delivery).await);
            }
            outcomes
        })
    }
}
