//! Reading the configuration in layers: built-in defaults < the file (`--config` /
//! `HERALD_CONFIG`) < the environment < flags. The file's top-level settings become the defaults
//! clap starts from, so the environment and the command line override them as they override the
//! built-in ones, and `--help` shows the values in effect.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgMatches, Command};

use super::file::FileConfig;

/// The environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "HERALD_CONFIG";

/// Where the file is: `--config PATH` (or `--config=PATH`) on the command line, else
/// `HERALD_CONFIG`.
pub fn config_path(args: &[OsString], env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy();
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    env(CONFIG_ENV)
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
}

/// Parses `args` into `C` with the file's settings as defaults. Returns the file too (empty when
/// there is none). Errors are clap's (printed and exited by the caller) or the file's.
pub fn parse_layered<C: clap::Parser>(
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(C, ArgMatches, FileConfig), LoadError> {
    let file = match config_path(args, env) {
        Some(path) => {
            FileConfig::load(&path).map_err(|error| LoadError::File(error.to_string()))?
        }
        None => FileConfig::default(),
    };
    let command = with_file_defaults(C::command(), &file.settings)?;
    let matches = command
        .clone()
        .try_get_matches_from(args)
        .map_err(|error| name_the_source(error, &command, args, &file, env))?;
    let parsed = C::from_arg_matches(&matches).map_err(LoadError::Clap)?;
    Ok((parsed, matches, file))
}

/// Rewrites clap's "invalid value for --flag" so it names what the user actually set: the
/// environment variable or the file key (clap only knows flags).
fn name_the_source(
    error: clap::Error,
    command: &Command,
    args: &[OsString],
    file: &FileConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> LoadError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return LoadError::Clap(error);
    }
    let text = |kind| match error.get(kind) {
        Some(ContextValue::String(text)) => Some(text.clone()),
        _ => None,
    };
    let (Some(flag), Some(value)) = (
        text(ContextKind::InvalidArg),
        text(ContextKind::InvalidValue),
    ) else {
        return LoadError::Clap(error);
    };
    let long = flag
        .trim_start_matches("--")
        .split([' ', '='])
        .next()
        .unwrap_or_default()
        .to_owned();
    let Some(arg) = find_arg(command, &long) else {
        return LoadError::Clap(error);
    };
    let on_command_line = args.iter().any(|arg| {
        let arg = arg.to_string_lossy();
        arg == format!("--{long}") || arg.starts_with(&format!("--{long}="))
    });
    if on_command_line {
        return LoadError::Clap(error);
    }
    let shown = if arg.is_hide_env_values_set() {
        "[redacted]".to_owned()
    } else {
        format!("{value:?}")
    };
    let reason = std::error::Error::source(&error)
        .map_or_else(|| "not a valid value".to_owned(), ToString::to_string);
    let id = arg.get_id().as_str();
    let env_name = arg
        .get_env()
        .map(|name| name.to_string_lossy().into_owned());
    if let Some(name) = env_name.filter(|name| env(name).is_some()) {
        return LoadError::File(format!("{name}={shown}: {reason}"));
    }
    if file.settings.contains_key(id) {
        return LoadError::File(format!(
            "`{id} = {shown}` in the configuration file: {reason}"
        ));
    }
    LoadError::Clap(error)
}

fn find_arg<'a>(command: &'a Command, long: &str) -> Option<&'a clap::Arg> {
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .or_else(|| {
            command
                .get_subcommands()
                .find_map(|sub| find_arg(sub, long))
        })
}

/// Why the configuration cannot be read.
#[derive(Debug)]
pub enum LoadError {
    /// The file is missing, unreadable, or not valid (the message names it and the line).
    File(String),
    /// The command line or the environment (clap's own error, with usage).
    Clap(clap::Error),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(message) => f.write_str(message),
            Self::Clap(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// Sets each file setting as the default of every argument of that name, in every subcommand.
/// A setting no command knows is refused, with the closest name when there is one.
fn with_file_defaults(
    mut command: Command,
    settings: &BTreeMap<String, toml::Value>,
) -> Result<Command, LoadError> {
    for (key, value) in settings {
        let text = scalar(key, value)?;
        let mut known = false;
        command = apply(command, key, &text, &mut known);
        if !known {
            let mut names = Vec::new();
            collect_names(&command, &mut names);
            let hint = closest(key, &names)
                .map(|name| format!("; did you mean `{name}`?"))
                .unwrap_or_default();
            return Err(LoadError::File(format!(
                "unknown setting `{key}` in the configuration file{hint} (settings are named like \
                 the flags of `herald serve --help`, with `_` for `-`; tables are [destinations.NAME], \
                 [[routes]] and [analytics])"
            )));
        }
    }
    Ok(command)
}

fn apply(mut command: Command, key: &str, text: &str, known: &mut bool) -> Command {
    if command.get_arguments().any(|arg| arg.get_id() == key) {
        *known = true;
        command = command.mut_arg(key, |arg| {
            let secret = arg.is_hide_env_values_set();
            arg.default_value(text.to_owned())
                .hide_default_value(secret)
        });
    }
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    for name in names {
        command = command.mut_subcommand(name, |sub| apply(sub, key, text, known));
    }
    command
}

fn collect_names(command: &Command, names: &mut Vec<String>) {
    for arg in command.get_arguments() {
        names.push(arg.get_id().to_string());
    }
    for sub in command.get_subcommands() {
        collect_names(sub, names);
    }
}

/// The closest known name, when it is close enough to be a typo.
pub fn closest<'a>(key: &str, names: &'a [String]) -> Option<&'a str> {
    names
        .iter()
        .map(|name| (strsim::jaro_winkler(key, name), name))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| name.as_str())
}

/// A setting's value as the text a flag would take: lists are comma separated.
fn scalar(key: &str, value: &toml::Value) -> Result<String, LoadError> {
    let text = match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Integer(number) => number.to_string(),
        toml::Value::Float(number) => number.to_string(),
        toml::Value::Boolean(flag) => flag.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                toml::Value::String(text) => Ok(text.clone()),
                toml::Value::Integer(number) => Ok(number.to_string()),
                toml::Value::Float(number) => Ok(number.to_string()),
                toml::Value::Boolean(flag) => Ok(flag.to_string()),
                _ => Err(()),
            })
            .collect::<Result<Vec<_>, ()>>()
            .map_err(|()| {
                LoadError::File(format!(
                    "setting `{key}` in the configuration file: a list may hold only strings, \
                     numbers and booleans"
                ))
            })?
            .join(","),
        toml::Value::Datetime(at) => at.to_string(),
        toml::Value::Table(_) => {
            return Err(LoadError::File(format!(
                "`{key}` in the configuration file is a table, but herald knows no table of that \
                 name (tables are [destinations.NAME], [[routes]] and [analytics])"
            )));
        }
    };
    Ok(text)
}

#[cfg(test)]
mod tests {
    use clap::{Args, Parser, Subcommand};

    use super::*;

    #[derive(Debug, Parser)]
    struct Test {
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(Debug, Subcommand)]
    enum Sub {
        Serve(ServeArgs),
    }

    #[derive(Debug, Args)]
    struct ServeArgs {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, env = "TEST_LAYER_RETRY", default_value = "5s")]
        retry: String,
        #[arg(
            long,
            env = "TEST_LAYER_EVENTS",
            value_delimiter = ',',
            default_value = "a"
        )]
        events: Vec<String>,
    }

    fn parse(args: &[&str], env: &[(&str, &str)], file: &str) -> Result<ServeArgs, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.toml");
        std::fs::write(&path, file).unwrap();
        let mut full: Vec<OsString> = vec!["herald".into(), "serve".into()];
        full.extend(args.iter().map(OsString::from));
        full.push("--config".into());
        full.push(path.clone().into());
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup = move |name: &str| {
            env.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        parse_layered::<Test>(&full, &lookup)
            .map(|(test, _, _)| match test.command {
                Sub::Serve(args) => args,
            })
            .map_err(|error| error.to_string())
    }

    #[test]
    fn the_file_overrides_defaults_and_flags_override_the_file() {
        let from_file = parse(&[], &[], "retry = \"1m\"\nevents = [\"x\", \"y\"]\n").unwrap();
        assert_eq!(from_file.retry, "1m");
        assert_eq!(from_file.events, vec!["x".to_owned(), "y".to_owned()]);
        let flag = parse(&["--retry", "2m"], &[], "retry = \"1m\"\n").unwrap();
        assert_eq!(flag.retry, "2m");
        let default = parse(&[], &[], "").unwrap();
        assert_eq!(default.retry, "5s");
    }

    #[test]
    fn unknown_settings_are_refused_with_a_suggestion() {
        let error = parse(&[], &[], "retyr = \"1m\"\n").unwrap_err();
        assert!(error.contains("unknown setting `retyr`"), "{error}");
        assert!(error.contains("did you mean `retry`?"), "{error}");
        let error = parse(&[], &[], "[destination.x]\nkind = \"stdout\"\n").unwrap_err();
        assert!(error.contains("is a table"), "{error}");
    }

    #[test]
    fn finds_the_file_on_the_command_line_or_in_the_environment() {
        let env = |name: &str| (name == CONFIG_ENV).then(|| "/etc/herald.toml".to_owned());
        let none = |_: &str| None;
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            config_path(&args(&["herald", "serve", "--config", "a.toml"]), &env),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            config_path(&args(&["herald", "--config=b.toml", "serve"]), &none),
            Some(PathBuf::from("b.toml"))
        );
        assert_eq!(
            config_path(&args(&["herald", "serve"]), &env),
            Some(PathBuf::from("/etc/herald.toml"))
        );
        assert_eq!(config_path(&args(&["herald", "serve"]), &none), None);
    }
}
