//! The command line the training examples share: `--config PATH`, `--set key.path=value`
//! (repeatable), `--resume` and `-h` / `--help`, plus flags of the example's own that take one
//! value (e.g. `train_asr --evaluate DIR`).

/// What `parse_train_args` read.
#[derive(Debug, Default, PartialEq)]
pub struct TrainArgs {
    pub config_path: String,
    pub overrides: Vec<String>,
    pub resume: bool,
    pub help: bool,
    /// The example's own flags that were given, with their values, in order.
    pub own: Vec<(&'static str, String)>,
}

impl TrainArgs {
    /// The value of the example's own `flag`, if given (the last one wins).
    pub fn value(&self, flag: &str) -> Option<&str> {
        self.own
            .iter()
            .rev()
            .find(|(f, _)| *f == flag)
            .map(|(_, v)| v.as_str())
    }
}

/// Read `args` (without the program name). `own_flags` are the example's extra flags, each
/// with what its value is (for the error when it is missing). Errors name the argument.
pub fn parse_train_args(
    args: impl IntoIterator<Item = String>,
    default_config: &str,
    own_flags: &[(&'static str, &str)],
) -> Result<TrainArgs, String> {
    let mut out = TrainArgs {
        config_path: default_config.to_string(),
        ..TrainArgs::default()
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value_of = |what: &str| args.next().ok_or(format!("{arg} needs {what}"));
        match arg.as_str() {
            "--config" => out.config_path = value_of("a path")?,
            "--set" => out.overrides.push(value_of("key.path=value")?),
            "--resume" => out.resume = true,
            "-h" | "--help" => out.help = true,
            other => match own_flags.iter().find(|(flag, _)| *flag == other) {
                Some(&(flag, what)) => {
                    let value = value_of(what)?;
                    out.own.push((flag, value));
                }
                None => return Err(format!("unknown argument {other:?}")),
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<TrainArgs, String> {
        let own = [("--evaluate", "a checkpoint directory")];
        parse_train_args(args.iter().map(|s| s.to_string()), "configs/x.yaml", &own)
    }

    #[test]
    fn reads_every_flag_and_keeps_the_default_config() {
        let a = parse(&["--set", "a.b=1", "--resume", "--set", "c=2"]).unwrap();
        assert_eq!(a.config_path, "configs/x.yaml");
        assert_eq!(a.overrides, ["a.b=1", "c=2"]);
        assert!(a.resume && !a.help);
        let a = parse(&["--config", "y.yaml", "--evaluate", "runs/best", "-h"]).unwrap();
        assert_eq!(a.config_path, "y.yaml");
        assert_eq!(a.value("--evaluate"), Some("runs/best"));
        assert!(a.help);
    }

    #[test]
    fn missing_values_and_unknown_flags_are_named() {
        assert_eq!(parse(&["--config"]).unwrap_err(), "--config needs a path");
        assert_eq!(parse(&["--set"]).unwrap_err(), "--set needs key.path=value");
        assert_eq!(
            parse(&["--evaluate"]).unwrap_err(),
            "--evaluate needs a checkpoint directory"
        );
        assert_eq!(
            parse(&["--bogus"]).unwrap_err(),
            "unknown argument \"--bogus\""
        );
    }
}
