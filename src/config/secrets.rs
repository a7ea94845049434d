//! Where a secret comes from (`NAME`, `NAME_file`, `NAME_env`, `NAME_credential`): checked when
//! the config is loaded, read by [`SecretSource::read`]. The one code path for every secret.

use super::{ConfigError, Ctx};
use crate::secret::Secret;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// "missing: set NAME, NAME_file, NAME_env or NAME_credential".
pub(crate) fn missing_secret(name: &str) -> String {
    format!("missing: set {name}, {name}_file, {name}_env or {name}_credential")
}

/// Where a secret comes from, checked when the config is loaded and read by [`Self::read`]: the
/// one code path for every secret (DynHost passwords, read at load; the OVH API's
/// application secret and consumer key, read only by the `ovh` commands).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSource {
    pub form: SecretForm,
    /// The config key that named it (`host[0].password_file`), for messages.
    pub key: String,
    file: Option<PathBuf>,
    line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretForm {
    Inline(Secret),
    /// Its first line, trimmed.
    File(PathBuf),
    Env(String),
    /// A systemd credential name (`$CREDENTIALS_DIRECTORY/NAME`).
    Credential(String),
}

/// Exactly one of `NAME`, `NAME_file`, `NAME_env`, `NAME_credential`, or none (`Ok(None)`).
pub(crate) fn secret_source(
    name: &str,
    forms: [&Option<Spanned<String>>; 4],
    key: &dyn Fn(&str) -> String,
    ctx: &Ctx<'_>,
    base: &Path,
) -> Result<Option<SecretSource>, ConfigError> {
    let names = [
        name.to_string(),
        format!("{name}_file"),
        format!("{name}_env"),
        format!("{name}_credential"),
    ];
    let given: Vec<(usize, &Spanned<String>)> = forms
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| v.as_ref().map(|v| (i, v)))
        .collect();
    let (which, value) = match given.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        [_, (second, v), ..] => {
            return Err(ctx.err(
                v,
                &key(&names[*second]),
                format!(
                    "set only one of {}, {}, {}, {}",
                    names[0], names[1], names[2], names[3]
                ),
            ));
        }
    };
    let form = match which {
        0 => {
            check_password(value.get_ref()).map_err(|m| ctx.err(value, &key(&names[0]), m))?;
            SecretForm::Inline(Secret::new(value.get_ref().clone()))
        }
        1 => SecretForm::File(base.join(value.get_ref())),
        2 => SecretForm::Env(value.get_ref().clone()),
        _ => {
            let name = value.get_ref();
            if name.is_empty() || name.contains('/') {
                return Err(ctx.err(value, &key(&names[3]), "a credential name, without '/'"));
            }
            SecretForm::Credential(name.clone())
        }
    };
    Ok(Some(SecretSource {
        form,
        key: key(&names[which]),
        file: ctx.file.map(Path::to_path_buf),
        line: ctx.line_of(value.span().start),
    }))
}

impl SecretSource {
    /// The secret itself. Errors name the key, the line and the file or variable, never the
    /// value.
    pub fn read(&self) -> Result<Secret, ConfigError> {
        let err = |message: String| ConfigError {
            file: self.file.clone(),
            line: Some(self.line),
            key: self.key.clone(),
            message,
        };
        // Read through crate::secret (bounded: a FIFO, a device or a giant file is refused).
        let from_file = |path: PathBuf| -> Result<Secret, ConfigError> {
            let secret = crate::secret::from_file(&path).map_err(|e| err(e.to_string()))?;
            check_password(secret.expose()).map_err(|m| err(format!("{}: {m}", path.display())))?;
            Ok(secret)
        };
        match &self.form {
            SecretForm::Inline(s) => Ok(s.clone()),
            SecretForm::File(path) => from_file(path.clone()),
            SecretForm::Env(var) => {
                let v = crate::secret::from_env(var)
                    .ok_or_else(|| err(format!("the environment variable {var} is not set")))?;
                check_password(v.expose()).map_err(|m| err(format!("${var}: {m}")))?;
                Ok(v)
            }
            SecretForm::Credential(name) => {
                let path = crate::secret::credential_path(name).map_err(|m| err(m.to_string()))?;
                from_file(path)
            }
        }
    }
}

fn check_password(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("the password is empty".into());
    }
    // A newline in the Basic auth header makes OVH answer 401 (ovh-dynhost.md).
    if p.chars().any(char::is_control) {
        return Err("the password holds a control character (a stray newline?)".into());
    }
    Ok(())
}
