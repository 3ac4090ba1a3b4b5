//! `firebreak-team-server` (and `firebreak team-server`): serve, or manage who may use it.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

/// The team server: incidents shared live between consoles, kept in PostgreSQL
/// (TEAM.md). Several can serve one database.
#[derive(Debug, clap::Args)]
pub struct TeamServerArgs {
    /// The server's configuration (listen address, database URL's file or variable, TLS).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Check this configuration file and exit (1 on a mistake), for CI and for systemd
    /// before a restart. The database is not contacted.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub check: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<TeamServerCommand>,
}

#[derive(Debug, Subcommand)]
pub enum TeamServerCommand {
    /// The people who may use the team server.
    #[command(subcommand)]
    User(UserCommand),
    /// The records the server could not take, newest first, as they were sent and why.
    Rejected {
        /// Only this team's.
        #[arg(long, value_name = "TEAM")]
        team: Option<String>,
        /// How many at most.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a person to one or more teams (made when missing) and print their token once:
    /// only its hash is kept.
    Add {
        name: String,
        #[arg(long = "team", value_name = "TEAM", required = true)]
        teams: Vec<String>,
    },
    /// Add a person who has a token to more teams (made when missing).
    Join {
        name: String,
        #[arg(long = "team", value_name = "TEAM", required = true)]
        teams: Vec<String>,
    },
    /// Take a person out of teams: their consoles are refused those teams from now on,
    /// open streams included.
    Leave {
        name: String,
        #[arg(long = "team", value_name = "TEAM", required = true)]
        teams: Vec<String>,
    },
    /// Revoke a person's token: everything sent with it is refused from now on, open
    /// streams included.
    Revoke { name: String },
    /// Everyone who has or had a token, and their teams.
    List,
}

/// Serves until Ctrl-C or SIGTERM, or runs one of the administrator's commands.
pub async fn run(args: TeamServerArgs) -> Result<()> {
    let TeamServerArgs {
        config,
        check,
        command,
    } = args;
    if let Some(path) = check {
        if command.is_some() {
            anyhow::bail!("--check FILE checks a configuration; it takes no command");
        }
        let config = crate::config::load(&path)?;
        println!(
            "{}: ok: listening on {} ({}), database from {}, at most {} connection(s)",
            path.display(),
            config.listen,
            if config.tls.is_some() {
                "TLS"
            } else {
                "loopback, no TLS"
            },
            match &config.database {
                firebreak_server::secret::Secret::File(f) => format!("the file {}", f.display()),
                firebreak_server::secret::Secret::Env(v) => format!("${v}"),
            },
            config.max_connections,
        );
        return Ok(());
    }
    let Some(path) = config else {
        anyhow::bail!("say --config FILE to serve or --check FILE to check (TEAM.md shows one)");
    };
    let config = crate::config::load(&path)?;
    match command {
        None => {
            let running = crate::server::start(&config).await?;
            println!("team server: {}", running.base_url());
            firebreak_common::process::shutdown_signal().await;
            running.shutdown();
        }
        Some(TeamServerCommand::User(user)) => {
            let url = crate::config::database_url(&config)?;
            let db = crate::db::TeamDb::connect(&url, 2).await?;
            match user {
                UserCommand::Add { name, teams } => {
                    let token = db.add_person(&name, &teams).await?;
                    eprintln!(
                        "{} added to {}. Their token, shown only now (give it to them; \
                         Settings → Team keeps it in their keychain):",
                        name.trim(),
                        teams.join(", ")
                    );
                    println!("{token}");
                }
                UserCommand::Join { name, teams } => {
                    db.join(&name, &teams).await?;
                    println!("{} is in {}", name.trim(), teams.join(", "));
                }
                UserCommand::Leave { name, teams } => {
                    db.leave(&name, &teams).await?;
                    println!("{} has left {}", name.trim(), teams.join(", "));
                }
                UserCommand::Revoke { name } => {
                    db.revoke_person(&name).await?;
                    println!("{}'s token is revoked", name.trim());
                }
                UserCommand::List => {
                    let people = db.people().await?;
                    if people.is_empty() {
                        println!("nobody has a token yet (team-server user add NAME --team TEAM)");
                    }
                    for p in people {
                        println!(
                            "{}  since {}  {}{}",
                            firebreak_common::text::shorten(&p.name, 120),
                            p.since.format("%Y-%m-%d"),
                            if p.teams.is_empty() {
                                "in no team".to_owned()
                            } else {
                                format!("teams: {}", p.teams.join(", "))
                            },
                            p.revoked_at.map_or_else(String::new, |at| format!(
                                "  revoked {}",
                                at.format("%Y-%m-%d %H:%M UTC")
                            )),
                        );
                    }
                }
            }
        }
        Some(TeamServerCommand::Rejected { team, limit }) => {
            let url = crate::config::database_url(&config)?;
            let db = crate::db::TeamDb::connect(&url, 1).await?;
            let rejected = db.rejected(team.as_deref(), i64::from(limit)).await?;
            if rejected.is_empty() {
                println!("no rejected records");
            }
            for r in rejected {
                println!(
                    "{}  team {}  from {} (console {})  record {}\n  why: {}\n  sent: {}",
                    r.received_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    r.team,
                    r.author,
                    r.console,
                    r.record_id
                        .map_or_else(|| "without a readable id".into(), |id| id.to_string()),
                    firebreak_common::text::shorten(&r.message, 1000),
                    firebreak_common::text::shorten(&r.raw, 400),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Args as _;

    /// clap checks a command's definition only when it is parsed: a mistake in it (an
    /// argument conflicting with one that does not exist) would panic at the first run.
    #[test]
    fn the_command_line_is_well_formed() {
        super::TeamServerArgs::augment_args(clap::Command::new("firebreak-team-server"))
            .debug_assert();
    }
}
