//! `metalhost image ...`

use std::path::PathBuf;

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::client::{CliError, Client};
use super::{Printer, segment};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Upload an image file (streamed; the server computes its sha256), or register an external URL.
    Add {
        /// The image file to upload (raw, raw compressed with gzip or zstd, or qcow2).
        file: Option<PathBuf>,
        #[arg(long)]
        name: String,
        /// Register an external image at this URL instead of uploading.
        #[arg(long, requires = "sha256", conflicts_with = "file")]
        url: Option<String>,
        /// The sha256 of the external image.
        #[arg(long)]
        sha256: Option<String>,
        /// none, gzip or zstd; guessed when absent.
        #[arg(long)]
        compression: Option<String>,
        /// raw or qcow2; told from the file's bytes when absent (a mismatch is refused).
        #[arg(long)]
        format: Option<String>,
        /// The project the image is for; without one it is public (admins only).
        #[arg(long)]
        project: Option<String>,
    },
    List,
    Show {
        image: String,
    },
    /// Delete an image no instance uses.
    Delete {
        image: String,
    },
}

pub async fn run(client: &Client, out: &Printer, cmd: ImageCommand) -> Result<(), CliError> {
    match cmd {
        ImageCommand::Add { file: Some(file), name, url: None, compression, format, project, .. } => {
            let handle = tokio::fs::File::open(&file).await.map_err(|e| CliError::Usage(format!("cannot open {}: {e}", file.display())))?;
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(handle, 1 << 20));
            let mut query = vec![("name", name)];
            if let Some(c) = compression {
                query.push(("compression", c));
            }
            if let Some(f) = format {
                query.push(("format", f));
            }
            if let Some(p) = project {
                query.push(("project", p));
            }
            let request = client.request(Method::POST, "/v1/images/upload").query(&query).body(body);
            out.one(&client.send(request).await?);
        }
        ImageCommand::Add { file: None, name, url: Some(url), sha256, compression, format, project } => {
            let body = json!({ "name": name, "url": url, "sha256": sha256, "compression": compression, "format": format, "project": project });
            out.one(&client.post("/v1/images", &body).await?);
        }
        ImageCommand::Add { .. } => return Err(CliError::Usage("give either a file to upload or --url and --sha256".into())),
        ImageCommand::List => {
            let list = client.get("/v1/images").await?;
            out.list(
                &list,
                &[
                    ("ID", "id"),
                    ("NAME", "name"),
                    ("FORMAT", "format"),
                    ("SIZE", "size"),
                    ("VIRTUAL", "virtual_size"),
                    ("COMPRESSION", "compression"),
                    ("SHA256", "sha256"),
                    ("URL", "url"),
                ],
            );
        }
        ImageCommand::Show { image } => out.one(&client.get(&format!("/v1/images/{}", segment(&image))).await?),
        ImageCommand::Delete { image } => {
            client.delete(&format!("/v1/images/{}", segment(&image))).await?;
            out.done(&format!("image {image} deleted"));
        }
    }
    Ok(())
}
