//! `metalhost project|user|token|audit ...`: projects, users and their roles, API tokens, and the
//! audit trail; and the client config file that saves typing `--token` (`client_config`).

use clap::Subcommand;
use serde_json::json;

use super::client::{CliError, Client};
use super::{Printer, segment};

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Make a project; it gets the lowest free VLAN of `[network] tenant_vlans`.
    Create {
        name: String,
        /// The most instances it may have at once.
        #[arg(long, default_value_t = 10)]
        quota: i64,
        #[command(flatten)]
        subnet: SubnetArgs,
    },
    /// The projects you belong to (an admin: all), with their VLAN and quota.
    List,
    Show {
        project: String,
    },
    /// Change a project's instance quota.
    Update {
        project: String,
        #[arg(long)]
        quota: i64,
    },
    /// Delete an empty project; its VLAN is free again.
    Delete {
        project: String,
    },
    /// Give a project without instances its IPv4 subnet (or `--remove` it): each instance gets an
    /// address from it on its config drive.
    Subnet {
        project: String,
        #[command(flatten)]
        subnet: SubnetArgs,
        #[arg(long, conflicts_with_all = ["subnet", "gateway", "dns"])]
        remove: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct SubnetArgs {
    /// The IPv4 subnet its instances get addresses from, like 10.77.0.0/24.
    #[arg(long)]
    subnet: Option<String>,
    /// Their gateway (an address of the subnet).
    #[arg(long, requires = "subnet")]
    gateway: Option<String>,
    /// A DNS server (repeatable, at most 3).
    #[arg(long, requires = "subnet")]
    dns: Vec<String>,
}

impl SubnetArgs {
    fn body(&self) -> Option<serde_json::Value> {
        self.subnet.as_ref().map(|cidr| json!({"cidr": cidr, "gateway": self.gateway, "dns": self.dns}))
    }
}

#[derive(Debug, Subcommand)]
pub enum KeypairCommand {
    /// Register an SSH public key under a name, to give instances with `--keypair NAME`.
    Add {
        name: String,
        /// The public key: a file (`~/.ssh/id_ed25519.pub`) or the key line itself.
        #[arg(long, value_name = "FILE|KEY")]
        public_key: String,
    },
    /// Your key pairs.
    List,
    Delete {
        name: String,
    },
}

pub async fn keypair(client: &Client, out: &Printer, cmd: KeypairCommand) -> Result<(), CliError> {
    match cmd {
        KeypairCommand::Add { name, public_key } => {
            let key = super::instance::key_line(&public_key)?;
            out.one(&client.post("/v1/keypairs", &json!({"name": name, "public_key": key})).await?)
        }
        KeypairCommand::List => out.list(&client.get("/v1/keypairs").await?, &[("NAME", "name"), ("PUBLIC KEY", "public_key")]),
        KeypairCommand::Delete { name } => {
            client.delete(&format!("/v1/keypairs/{}", segment(&name))).await?;
            out.done(&format!("key pair {name} deleted"));
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Make a user; give it a role (`user grant`) and a token (`token create --user`).
    Create {
        name: String,
        /// A system administrator: nodes, switches, plugins, public images, projects, users.
        #[arg(long)]
        admin: bool,
    },
    List,
    Show {
        user: String,
    },
    Delete {
        user: String,
    },
    /// Give a user a role in a project: member (creates and deletes instances, drives their
    /// nodes' power and consoles) or reader (reads only).
    Grant {
        user: String,
        project: String,
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Take a user's role in a project away.
    Revoke {
        user: String,
        project: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make an API token (yours, or an admin's for `--user`). It is shown once; the daemon keeps
    /// only its hash.
    Create {
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Days until it expires (1-365).
        #[arg(long, default_value_t = 30)]
        expires_in_days: i64,
        /// Also write it, with the daemon's URL, to the client config file (mode 0600), so
        /// later commands need no `--token`.
        #[arg(long)]
        save: bool,
    },
    /// Your tokens (an admin: everybody's), never the tokens themselves.
    List,
    /// Revoke a token at once.
    Revoke { id: i64 },
}

pub async fn project(client: &Client, out: &Printer, cmd: ProjectCommand) -> Result<(), CliError> {
    let columns: &[(&str, &str)] =
        &[("ID", "id"), ("NAME", "name"), ("VLAN", "vlan"), ("SUBNET", "subnet"), ("INSTANCES", "instances"), ("QUOTA", "quota")];
    match cmd {
        ProjectCommand::Create { name, quota, subnet } => {
            out.one(&client.post("/v1/projects", &json!({"name": name, "quota": quota, "subnet": subnet.body()})).await?)
        }
        ProjectCommand::Subnet { project, subnet, remove } => {
            let path = format!("/v1/projects/{}/subnet", segment(&project));
            match (remove, subnet.body()) {
                (true, _) => out.one(&client.delete(&path).await?),
                (false, Some(body)) => out.one(&client.put(&path, &body).await?),
                (false, None) => return Err(CliError::Usage("give --subnet CIDR (with --gateway, --dns) or --remove".into())),
            }
        }
        ProjectCommand::List => out.list(&client.get("/v1/projects").await?, columns),
        ProjectCommand::Show { project } => out.one(&client.get(&format!("/v1/projects/{}", segment(&project))).await?),
        ProjectCommand::Update { project, quota } => {
            out.one(&client.patch(&format!("/v1/projects/{}", segment(&project)), &json!({"quota": quota})).await?)
        }
        ProjectCommand::Delete { project } => {
            client.delete(&format!("/v1/projects/{}", segment(&project))).await?;
            out.done(&format!("project {project} deleted"));
        }
    }
    Ok(())
}

/// A user's roles as one cell: `alpha:member,beta:reader`.
fn with_roles(mut user: serde_json::Value) -> serde_json::Value {
    let roles: Vec<String> = user["projects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| format!("{}:{}", m["project"].as_str().unwrap_or("?"), m["role"].as_str().unwrap_or("?")))
        .collect();
    user["roles"] = json!(roles.join(","));
    user
}

pub async fn user(client: &Client, out: &Printer, cmd: UserCommand) -> Result<(), CliError> {
    match cmd {
        UserCommand::Create { name, admin } => out.one(&client.post("/v1/users", &json!({"name": name, "admin": admin})).await?),
        UserCommand::List => {
            let users = client.get("/v1/users").await?;
            let users = json!(users.as_array().into_iter().flatten().cloned().map(with_roles).collect::<Vec<_>>());
            out.list(&users, &[("ID", "id"), ("NAME", "name"), ("ADMIN", "admin"), ("ROLES", "roles")]);
        }
        UserCommand::Show { user } => out.one(&with_roles(client.get(&format!("/v1/users/{}", segment(&user))).await?)),
        UserCommand::Delete { user } => {
            client.delete(&format!("/v1/users/{}", segment(&user))).await?;
            out.done(&format!("user {user} deleted"));
        }
        UserCommand::Grant { user, project, role } => {
            let path = format!("/v1/users/{}/roles/{}", segment(&user), segment(&project));
            out.one(&with_roles(client.put(&path, &json!({"role": role})).await?));
        }
        UserCommand::Revoke { user, project } => {
            let path = format!("/v1/users/{}/roles/{}", segment(&user), segment(&project));
            out.one(&with_roles(client.delete(&path).await?));
        }
    }
    Ok(())
}

pub async fn token(client: &Client, out: &Printer, cmd: TokenCommand) -> Result<(), CliError> {
    match cmd {
        TokenCommand::Create { user, description, expires_in_days, save } => {
            let body = json!({"user": user, "description": description, "expires_in_days": expires_in_days});
            let made = client.post("/v1/tokens", &body).await?;
            if save {
                let token = made["token"].as_str().ok_or_else(|| CliError::Usage("the daemon returned no token".into()))?;
                let path = client_config::save(client.base(), token, client.ca_file())?;
                eprintln!("saved to {} (mode 0600)", path.display());
            }
            out.one(&made);
            if !out.json {
                eprintln!("the token is shown this once: the daemon keeps only its hash");
            }
        }
        TokenCommand::List => out.list(
            &client.get("/v1/tokens").await?,
            &[("ID", "id"), ("USER", "user"), ("DESCRIPTION", "description"), ("EXPIRES", "expires_at"), ("REVOKED", "revoked_at")],
        ),
        TokenCommand::Revoke { id } => out.one(&client.delete(&format!("/v1/tokens/{id}")).await?),
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Entries per page (1-1000).
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// Every page, not only the first (the newest).
    #[arg(long)]
    all: bool,
    /// Whose entries: a user's name or id (`anonymous`: requests without a valid token).
    #[arg(long)]
    user: Option<String>,
    /// Operations whose id starts with this, e.g. `delete` or `create_node`.
    #[arg(long)]
    action: Option<String>,
    /// ok (below 400), denied (401, 403, 404) or failed (any other from 400).
    #[arg(long)]
    outcome: Option<String>,
}

pub async fn audit(client: &Client, out: &Printer, args: AuditArgs) -> Result<(), CliError> {
    let AuditArgs { limit, all, user, action, outcome } = args;
    let params: Vec<(String, String)> = [("limit", Some(limit.to_string())), ("user", user), ("action", action), ("outcome", outcome)]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), v?)))
        .collect();
    out.list(
        &client.list_pages("/v1/audit", &params, all).await?,
        &[("AT", "at"), ("WHO", "actor"), ("ACTION", "action"), ("OBJECT", "object"), ("OUTCOME", "outcome"), ("FROM", "address")],
    );
    Ok(())
}

/// The client config file: `url`, `token` and `ca` so people need not pass them each time.
/// `METALHOST_CLIENT_CONFIG`, else `$XDG_CONFIG_HOME/metalhost/client.toml`, else
/// `~/.config/metalhost/client.toml`. `--token`/`METALHOST_TOKEN` and `--url`/`METALHOST_URL`
/// win over it. It holds a secret, so one that others may read is refused, as ssh does.
pub mod client_config {
    use super::CliError;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    use std::path::PathBuf;

    #[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct ClientConfig {
        pub url: Option<String>,
        pub token: Option<String>,
        /// The daemon's CA (PEM file), as `--ca`.
        pub ca: Option<PathBuf>,
    }

    pub fn path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("METALHOST_CLIENT_CONFIG") {
            return Some(PathBuf::from(p));
        }
        let base =
            std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("metalhost/client.toml"))
    }

    /// The file's settings; none when there is no file.
    pub fn load() -> Result<ClientConfig, CliError> {
        let Some(path) = path() else { return Ok(ClientConfig::default()) };
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ClientConfig::default()),
            Err(e) => return Err(CliError::Usage(format!("cannot read {}: {e}", path.display()))),
        };
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(CliError::Usage(format!(
                "{} holds a token but others may read it (mode {:o}): chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            )));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
    }

    /// Writes `url` and `token` to the file, readable by its owner only.
    pub fn save(url: &str, token: &str, ca: Option<PathBuf>) -> Result<PathBuf, CliError> {
        let path = path().ok_or_else(|| CliError::Usage("no HOME, XDG_CONFIG_HOME or METALHOST_CLIENT_CONFIG to save the token under".into()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = toml::to_string(&ClientConfig { url: Some(url.to_owned()), token: Some(token.to_owned()), ca })
            .map_err(|e| CliError::Usage(format!("cannot write the client config: {e}")))?;
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        Ok(path)
    }
}
