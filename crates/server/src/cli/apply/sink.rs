//! Delivering new token values: to a file created with mode 0600, or to stdout, once.

use crate::api::IssuedTokenDto;
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where new token values go: written as each token is created, so a later failure loses none.
pub enum TokenSink {
    Stdout,
    File { file: std::fs::File, path: PathBuf },
}

impl TokenSink {
    /// Creates the file with mode 0600 from the start (never a moment with a wider mode), and
    /// refuses an existing one unless told to replace it.
    pub fn open(path: Option<&Path>, overwrite: bool) -> anyhow::Result<TokenSink> {
        use std::os::unix::fs::OpenOptionsExt;
        let Some(path) = path else {
            return Ok(TokenSink::Stdout);
        };
        if overwrite {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(err).with_context(|| format!("cannot replace {}", path.display()));
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|err| {
                if err.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow::anyhow!(
                        "--token-output {} exists: give another path, or --overwrite-token-output",
                        path.display()
                    )
                } else {
                    anyhow::Error::new(err).context(format!("cannot create {}", path.display()))
                }
            })?;
        Ok(TokenSink::File {
            file,
            path: path.to_owned(),
        })
    }

    pub fn deliver(&mut self, object: &str, issued: &IssuedTokenDto) -> anyhow::Result<()> {
        match self {
            TokenSink::Stdout => {
                println!("{object} (shown once, store it now): {}", issued.token);
                Ok(())
            }
            TokenSink::File { file, path } => writeln!(file, "{object} {}", issued.token)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write to {}", path.display())),
        }
    }
}
