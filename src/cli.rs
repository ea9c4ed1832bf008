//! The command line: serving (the default) and admin account management.

use std::io::BufRead;

use anyhow::{bail, Context};

use crate::config::Config;
use crate::db::models::{Admin, NewAdmin};

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Print usage.
    Help,
    /// Create an admin.
    AdminCreate {
        /// Username.
        name: String,
        /// Read the password from standard input instead of prompting.
        password_stdin: bool,
    },
    /// Set an admin's password.
    AdminResetPassword {
        /// Username.
        name: String,
        /// Read the password from standard input instead of prompting.
        password_stdin: bool,
    },
}

/// Usage text.
pub const USAGE: &str = "\
Usage:
  wxlogin                                       run the server (configured by the environment / .env)
  wxlogin admin create NAME [--password-stdin]  create a console admin
  wxlogin admin reset-password NAME [--password-stdin]
                                                set an admin's password (signs them out everywhere)
  wxlogin --help                                this text

Without --password-stdin the password is asked for twice on the terminal.";

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] | ["serve"] => Ok(Command::Serve),
        ["-h" | "--help" | "help"] => Ok(Command::Help),
        ["admin", action, rest @ ..] => {
            let mut name = None;
            let mut password_stdin = false;
            for arg in rest {
                match *arg {
                    "--password-stdin" => password_stdin = true,
                    a if a.starts_with('-') => return Err(format!("unknown option {a}")),
                    a if name.is_none() => name = Some(a.to_owned()),
                    a => return Err(format!("unexpected argument {a}")),
                }
            }
            let name = name.ok_or("the admin's NAME is missing")?;
            match *action {
                "create" => Ok(Command::AdminCreate {
                    name,
                    password_stdin,
                }),
                "reset-password" => Ok(Command::AdminResetPassword {
                    name,
                    password_stdin,
                }),
                other => Err(format!("unknown admin command {other}")),
            }
        }
        [other, ..] => Err(format!("unknown command {other}")),
    }
}

/// Checks an admin username: 1–64 letters, digits, `.`, `_`, `-` or `@`.
pub fn validate_username(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.len() > 64 {
        bail!("the username must be 1 to 64 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        bail!("the username may only contain letters, digits, '.', '_', '-' and '@'");
    }
    Ok(())
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = rpassword::prompt_password("New password: ").context("reading the password")?;
        let second = rpassword::prompt_password("Repeat it: ").context("reading the password")?;
        if first != second {
            bail!("the two passwords differ");
        }
        first
    };
    crate::passwords::validate_new(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(password)
}

/// Runs an admin command against the configured database.
pub fn run_admin_command(command: Command, config: &Config) -> anyhow::Result<()> {
    let pool = crate::db::connect(&config.database_url)?;
    let mut conn = pool.get().context("opening the database")?;
    match command {
        Command::AdminCreate {
            name,
            password_stdin,
        } => {
            validate_username(&name)?;
            if Admin::find_by_username(&mut conn, &name)?.is_some() {
                bail!("an admin named {name} exists already; use `wxlogin admin reset-password {name}`");
            }
            let hash = crate::passwords::hash(&read_password(password_stdin)?)?;
            let now = crate::db::now();
            Admin::create(
                &mut conn,
                &NewAdmin {
                    username: &name,
                    password_hash: &hash,
                    must_change_password: false,
                    created_at: now,
                    updated_at: now,
                },
            )?;
            println!("created admin {name}");
        }
        Command::AdminResetPassword {
            name,
            password_stdin,
        } => {
            let admin = Admin::find_by_username(&mut conn, &name)?
                .with_context(|| format!("there is no admin named {name}"))?;
            let hash = crate::passwords::hash(&read_password(password_stdin)?)?;
            Admin::set_password(&mut conn, admin.id, &hash, false, crate::db::now())?;
            println!("password of {name} changed; their console sessions have ended");
        }
        Command::Serve | Command::Help => unreachable!("not an admin command"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_command_line_is_parsed() {
        assert_eq!(parse(&args(&[])), Ok(Command::Serve));
        assert_eq!(
            parse(&args(&["admin", "create", "ops", "--password-stdin"])),
            Ok(Command::AdminCreate {
                name: "ops".into(),
                password_stdin: true
            })
        );
        assert_eq!(
            parse(&args(&["admin", "reset-password", "ops"])),
            Ok(Command::AdminResetPassword {
                name: "ops".into(),
                password_stdin: false
            })
        );
        assert!(parse(&args(&["admin", "create"])).is_err());
        assert!(parse(&args(&["admin", "delete", "x"])).is_err());
        assert!(parse(&args(&["admin", "create", "a", "--force"])).is_err());
        assert!(parse(&args(&["frobnicate"])).is_err());
    }

    #[test]
    fn usernames_are_validated() {
        assert!(validate_username("ops.team-1@corp").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("has space").is_err());
        assert!(validate_username("<b>").is_err());
    }
}
