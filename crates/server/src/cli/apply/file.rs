//! The declarative file format of `tollgate apply` and `tollgate get -o yaml`: a YAML stream of
//! documents in the style of Kubernetes manifests, one object each.
//!
//! ```yaml
//! apiVersion: tollgate.dev/v1
//! kind: ServiceAccount          # or Role
//! metadata: {name: ci-reader, tenant: acme}
//! spec: {role: viewer, labelPolicy: '{kube_namespace="prometheus"}', tokens: [{name: main, expiresIn: 30d}]}
//! ```
//!
//! Names are identity (tenant + name); a field left out of `spec` is not managed (left as the
//! server has it, or its default at creation). Unknown fields are errors. Token values never
//! appear in these files.

use serde::de::{Deserialize, IgnoredAny};
use serde::{Deserialize as DeserializeDerive, Serialize};
use std::fmt;

pub const API_VERSION: &str = "tollgate.dev/v1";
pub const KIND_ACCOUNT: &str = "ServiceAccount";
pub const KIND_ROLE: &str = "Role";

#[derive(Debug, Clone, PartialEq, Serialize, DeserializeDerive)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
    /// Defaults to the caller's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, DeserializeDerive)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_email: Option<String>,
    pub role: String,
    /// Empty for unrestricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Other tenants its tokens may read (`["*"]`: all); set by all-tenant admins only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_tenants: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hide_policy_labels: Option<bool>,
    /// Absent: tokens are not managed. A list: these tokens exist (and with `--prune`, only these).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<TokenSpec>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, DeserializeDerive)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenSpec {
    pub name: String,
    /// A lifetime from creation such as `30d` (creation only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, DeserializeDerive)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, DeserializeDerive)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Document<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: S,
}

impl<S> Document<S> {
    pub fn new(kind: &str, metadata: Metadata, spec: S) -> Document<S> {
        Document {
            api_version: API_VERSION.to_owned(),
            kind: kind.to_owned(),
            metadata,
            spec,
        }
    }
}

/// Where an object came from, for messages: `accounts.yaml, document 3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    /// 1-based.
    pub document: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, document {}", self.file, self.document)
    }
}

/// A document of a known kind, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Account(Origin, Document<AccountSpec>),
    Role(Origin, Document<RoleSpec>),
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// YAML syntax, a missing or unknown field, a wrong type: serde's message names the field
    /// and carries the line and column.
    #[error("{origin}: {message}")]
    Yaml { origin: Origin, message: String },
    #[error("{origin}: apiVersion: expected {API_VERSION}, got \"{found}\"")]
    ApiVersion { origin: Origin, found: String },
    #[error(
        "{origin}: kind: expected {KIND_ACCOUNT} or {KIND_ROLE}, got \"{found}\" (one object per document)"
    )]
    Kind { origin: Origin, found: String },
}

/// Only what tells the document's kind; every other field is read by the kind's own type.
#[derive(DeserializeDerive)]
#[serde(rename_all = "camelCase")]
struct Header {
    api_version: Option<String>,
    kind: Option<String>,
}

fn yaml_error(origin: &Origin, err: &serde_yaml_ng::Error) -> FileError {
    FileError::Yaml {
        origin: origin.clone(),
        message: err.to_string(),
    }
}

/// Reads every document of `text`. The stream is read twice: once for each document's kind,
/// then each document as its kind's type with unknown fields denied, so that serde's errors
/// keep their field names and line numbers (a generic value in between would lose both).
pub fn parse(file: &str, text: &str) -> Result<Vec<Object>, FileError> {
    let mut kinds = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let origin = Origin {
            file: file.to_owned(),
            document: i + 1,
        };
        let header =
            Option::<Header>::deserialize(document).map_err(|e| yaml_error(&origin, &e))?;
        let kind = match header {
            // An empty document (a trailing `---`).
            None => None,
            Some(Header { api_version, kind }) => {
                let api_version = api_version.unwrap_or_default();
                if api_version != API_VERSION {
                    return Err(FileError::ApiVersion {
                        origin,
                        found: api_version,
                    });
                }
                match kind.as_deref() {
                    Some(KIND_ACCOUNT) | Some(KIND_ROLE) => kind,
                    _ => {
                        return Err(FileError::Kind {
                            origin,
                            found: kind.unwrap_or_default(),
                        });
                    }
                }
            }
        };
        kinds.push(kind);
    }
    let mut objects = Vec::new();
    for (i, (document, kind)) in serde_yaml_ng::Deserializer::from_str(text)
        .zip(kinds)
        .enumerate()
    {
        let origin = Origin {
            file: file.to_owned(),
            document: i + 1,
        };
        let object = match kind.as_deref() {
            Some(KIND_ACCOUNT) => Object::Account(
                origin.clone(),
                Document::deserialize(document).map_err(|e| yaml_error(&origin, &e))?,
            ),
            Some(_) => Object::Role(
                origin.clone(),
                Document::deserialize(document).map_err(|e| yaml_error(&origin, &e))?,
            ),
            None => {
                IgnoredAny::deserialize(document).map_err(|e| yaml_error(&origin, &e))?;
                continue;
            }
        };
        objects.push(object);
    }
    Ok(objects)
}

/// Documents as a YAML stream, `---` between them.
pub fn render<T: Serialize>(documents: &[T]) -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for (i, document) in documents.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml_ng::to_string(document)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const GOOD: &str = r#"
apiVersion: tollgate.dev/v1
kind: Role
metadata: {name: sa-manager, tenant: acme}
spec:
  scopes: [accounts:read, accounts:write]
---
apiVersion: tollgate.dev/v1
kind: ServiceAccount
metadata:
  name: ci-reader
  tenant: acme
spec:
  role: viewer
  labelPolicy: '{kube_namespace="prometheus"}'
  tokens:
    - name: main
      expiresIn: 30d
---
"#;

    #[test]
    fn documents_of_both_kinds_are_read_and_written_back() {
        let objects = parse("a.yaml", GOOD).unwrap();
        assert_eq!(objects.len(), 2, "the empty trailing document is skipped");
        let Object::Account(origin, account) = &objects[1] else {
            panic!("{objects:?}");
        };
        assert_eq!(origin.to_string(), "a.yaml, document 2");
        assert_eq!(account.spec.tokens.as_ref().unwrap()[0].name, "main");
        let again = parse("b.yaml", &render(&[account]).unwrap()).unwrap();
        assert!(matches!(&again[0], Object::Account(_, a) if a == account));
    }

    #[test]
    fn errors_name_the_file_document_field_and_line() {
        let cases = [
            (
                "apiVersion: tollgate.dev/v1\nkind: ServiceAccount\nmetadata: {name: a}\nspec:\n  role: viewer\n  colour: blue\n",
                &["x.yaml, document 1", "unknown field `colour`", "line 6"][..],
                "an unknown field in spec",
            ),
            (
                "apiVersion: tollgate.dev/v1\nkind: ServiceAccount\nmetadata: {name: a, namespace: b}\nspec: {role: viewer}\n",
                &["unknown field `namespace`"][..],
                "an unknown field in metadata",
            ),
            (
                "apiVersion: tollgate.dev/v1\nkind: ServiceAccount\nmetadata: {name: a}\nspec: {}\n",
                &["missing field `role`"][..],
                "a missing field",
            ),
            (
                "apiVersion: tollgate.dev/v1\nkind: Role\nmetadata: {name: a}\nspec: {scopes: [a]}\n---\napiVersion: tollgate.dev/v1\nkind: ServiceAccount\nmetadata: {name: a}\nspec: {role: viewer, tokens: [{name: t, expiresIn: 1d, extra: 1}]}\n",
                &["x.yaml, document 2", "unknown field `extra`"][..],
                "the second document, inside a token",
            ),
            (
                "apiVersion: v1\nkind: ServiceAccount\n",
                &["apiVersion: expected tollgate.dev/v1"][..],
                "another API version",
            ),
            (
                "apiVersion: tollgate.dev/v1\nkind: Secret\n",
                &["kind: expected ServiceAccount or Role, got \"Secret\""][..],
                "an unknown kind",
            ),
            (
                "apiVersion: tollgate.dev/v1\nkind: [\n",
                &["x.yaml, document 1", "line"][..],
                "broken YAML",
            ),
        ];
        for (text, wants, why) in cases {
            let err = parse("x.yaml", text).unwrap_err().to_string();
            for want in wants {
                assert!(err.contains(want), "{why}: {err} lacks {want}");
            }
        }
    }
}
