//! Role documents: custom roles (a tenant's named bundles of scopes) against the roles API,
//! `GET`/`POST /api/v1/roles`, `PATCH`/`DELETE /api/v1/roles/{name}?tenant=`. Built-in roles
//! have no tenant and are never changed or deleted.
//!
//! The roles API is newer than the rest: a server without it answers 404, which is an error only
//! when the file has Role documents (a file of accounts alone never asks for roles).

use super::file::{Document, KIND_ROLE, Metadata, Origin, RoleSpec};
use crate::cli::client::{ApiError, Client, NONE, segment};
use anyhow::bail;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

pub const ROLES_PATH: &str = "/api/v1/roles";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleDto {
    pub name: String,
    /// Absent for a built-in role.
    #[serde(default)]
    pub tenant: Option<String>,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub builtin: bool,
}

#[derive(Deserialize)]
struct RoleListDto {
    items: Vec<RoleDto>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TenantParam<'a> {
    tenant: &'a str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRoleBody {
    pub name: String,
    pub tenant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchRoleBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

/// A Role document with its tenant resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRole {
    pub origin: Origin,
    pub tenant: String,
    pub name: String,
    pub spec: RoleSpec,
}

impl DesiredRole {
    pub fn from_document(
        origin: Origin,
        document: Document<RoleSpec>,
        default_tenant: &str,
    ) -> DesiredRole {
        let Document { metadata, spec, .. } = document;
        DesiredRole {
            origin,
            tenant: metadata.tenant.unwrap_or_else(|| default_tenant.to_owned()),
            name: metadata.name,
            spec,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RoleStep {
    Create(CreateRoleBody),
    Update {
        tenant: String,
        name: String,
        /// `field: old -> new` lines.
        changes: Vec<String>,
        body: PatchRoleBody,
    },
    Delete {
        tenant: String,
        name: String,
    },
}

impl RoleStep {
    pub fn object(&self) -> String {
        match self {
            RoleStep::Create(body) => format!("role {}/{}", body.tenant, body.name),
            RoleStep::Update { tenant, name, .. } | RoleStep::Delete { tenant, name } => {
                format!("role {tenant}/{name}")
            }
        }
    }

    pub fn lines(&self) -> Vec<String> {
        let object = self.object();
        match self {
            RoleStep::Create(body) => vec![format!("+ {object} (scopes {})", scopes(&body.scopes))],
            RoleStep::Update { changes, .. } => changes
                .iter()
                .map(|change| format!("~ {object} {change}"))
                .collect(),
            RoleStep::Delete { .. } => vec![format!("- {object}")],
        }
    }

    pub async fn apply(&self, client: &Client) -> anyhow::Result<()> {
        match self {
            RoleStep::Create(body) => client
                .call::<serde_json::Value>(Method::POST, ROLES_PATH, NONE, Some(body))
                .await
                .map(drop),
            RoleStep::Update {
                tenant, name, body, ..
            } => client
                .call::<serde_json::Value>(
                    Method::PATCH,
                    &role_path(tenant, name),
                    NONE,
                    Some(body),
                )
                .await
                .map(drop),
            RoleStep::Delete { tenant, name } => client
                .call_empty(Method::DELETE, &role_path(tenant, name), NONE)
                .await
                .map_err(|err| {
                    if err
                        .downcast_ref::<ApiError>()
                        .is_some_and(|e| e.reason == "role_in_use")
                    {
                        err.context("an account outside the file still has this role")
                    } else {
                        err
                    }
                }),
        }
    }
}

fn role_path(tenant: &str, name: &str) -> String {
    format!("{ROLES_PATH}/{}?tenant={}", segment(name), segment(tenant))
}

/// Scopes as a set: order and repetition in the file are not a change.
fn scope_set(scopes: &[String]) -> BTreeSet<&str> {
    scopes.iter().map(String::as_str).collect()
}

fn scopes(scopes: &[String]) -> String {
    let set: Vec<&str> = scope_set(scopes).into_iter().collect();
    format!("[{}]", set.join(", "))
}

/// Role steps: creates and updates (applied before accounts, which may use them), and deletes
/// (applied after accounts are pruned). With prune, the custom roles of the file's tenants
/// that it does not list are deleted.
#[derive(Debug, Default, PartialEq)]
pub struct RolePlan {
    pub upserts: Vec<RoleStep>,
    pub deletes: Vec<RoleStep>,
}

pub fn plan_roles(
    desired: &[DesiredRole],
    current: &[RoleDto],
    prune: bool,
) -> anyhow::Result<RolePlan> {
    let mut seen: HashMap<(&str, &str), &Origin> = HashMap::new();
    let mut plan = RolePlan::default();
    for want in desired {
        if let Some(first) = seen.insert((&want.tenant, &want.name), &want.origin) {
            bail!(
                "{}: role {}/{} is also in {first}",
                want.origin,
                want.tenant,
                want.name
            );
        }
        // The server's list says which roles are built in; the core crate knows them too, in
        // case a tenant filter leaves built-ins out of the list.
        if want.name.parse::<tollgate_core::Role>().is_ok()
            || current.iter().any(|r| r.builtin && r.name == want.name)
        {
            bail!(
                "{}: role \"{}\" is built in: it cannot be defined, changed or deleted",
                want.origin,
                want.name
            );
        }
        let found = current.iter().find(|r| {
            !r.builtin && r.tenant.as_deref() == Some(&want.tenant) && r.name == want.name
        });
        let Some(role) = found else {
            plan.upserts.push(RoleStep::Create(CreateRoleBody {
                name: want.name.clone(),
                tenant: want.tenant.clone(),
                description: want.spec.description.clone(),
                scopes: want.spec.scopes.clone(),
            }));
            continue;
        };
        let mut changes = Vec::new();
        let mut body = PatchRoleBody::default();
        if let Some(description) = want
            .spec
            .description
            .as_ref()
            .filter(|d| **d != role.description)
        {
            changes.push(format!(
                "description: {:?} -> {description:?}",
                role.description
            ));
            body.description = Some(description.clone());
        }
        if scope_set(&want.spec.scopes) != scope_set(&role.scopes) {
            changes.push(format!(
                "scopes: {} -> {}",
                scopes(&role.scopes),
                scopes(&want.spec.scopes)
            ));
            body.scopes = Some(want.spec.scopes.clone());
        }
        if !changes.is_empty() {
            plan.upserts.push(RoleStep::Update {
                tenant: want.tenant.clone(),
                name: want.name.clone(),
                changes,
                body,
            });
        }
    }
    if prune {
        let tenants: BTreeSet<&str> = desired.iter().map(|r| r.tenant.as_str()).collect();
        for role in current.iter().filter(|r| !r.builtin) {
            let Some(tenant) = role.tenant.as_deref() else {
                continue;
            };
            if tenants.contains(tenant)
                && !desired
                    .iter()
                    .any(|d| d.tenant == tenant && d.name == role.name)
            {
                plan.deletes.push(RoleStep::Delete {
                    tenant: tenant.to_owned(),
                    name: role.name.clone(),
                });
            }
        }
    }
    Ok(plan)
}

/// The roles of `tenants` (every role the caller sees when `None`). A server without the roles
/// API is an error that says so.
pub async fn fetch_roles(
    client: &Client,
    tenants: Option<&BTreeSet<String>>,
) -> anyhow::Result<Vec<RoleDto>> {
    let answer = async {
        let mut roles: Vec<RoleDto> = Vec::new();
        let Some(tenants) = tenants else {
            return fetch(client, None).await;
        };
        for tenant in tenants {
            for role in fetch(client, Some(tenant)).await? {
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
        }
        Ok(roles)
    }
    .await;
    answer.map_err(|err| {
        if ApiError::has_status(&err, 404) {
            err.context("this server has no roles API (GET /api/v1/roles answered 404): upgrade it, or leave Role documents out")
        } else {
            err
        }
    })
}

async fn fetch(client: &Client, tenant: Option<&str>) -> anyhow::Result<Vec<RoleDto>> {
    let query = tenant.map(|tenant| TenantParam { tenant });
    let list: RoleListDto = client
        .call(Method::GET, ROLES_PATH, query.as_ref(), NONE)
        .await?;
    Ok(list.items)
}

/// Custom roles as documents, for `tollgate get`.
pub fn documents(roles: &[RoleDto]) -> Vec<Document<RoleSpec>> {
    roles
        .iter()
        .filter(|r| !r.builtin)
        .map(|role| {
            Document::new(
                KIND_ROLE,
                Metadata {
                    name: role.name.clone(),
                    tenant: role.tenant.clone(),
                },
                RoleSpec {
                    description: Some(role.description.clone()),
                    scopes: role.scopes.clone(),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn role(tenant: Option<&str>, name: &str, scopes: &[&str]) -> RoleDto {
        RoleDto {
            name: name.into(),
            tenant: tenant.map(Into::into),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            description: String::new(),
            builtin: tenant.is_none(),
        }
    }

    fn want(tenant: &str, name: &str, scopes: &[&str], description: Option<&str>) -> DesiredRole {
        DesiredRole {
            origin: Origin {
                file: "r.yaml".into(),
                document: 1,
            },
            tenant: tenant.into(),
            name: name.into(),
            spec: RoleSpec {
                description: description.map(Into::into),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            },
        }
    }

    fn lines(plan: &RolePlan) -> Vec<String> {
        plan.upserts
            .iter()
            .chain(&plan.deletes)
            .flat_map(RoleStep::lines)
            .collect()
    }

    fn current() -> Vec<RoleDto> {
        vec![
            role(
                None,
                "viewer",
                &["metrics:read", "logs:read", "traces:read"],
            ),
            role(
                Some("acme"),
                "sa-manager",
                &["accounts:read", "accounts:write"],
            ),
            role(Some("acme"), "old", &["metrics:read"]),
            role(Some("globex"), "theirs", &["metrics:read"]),
        ]
    }

    #[test]
    fn scopes_compare_as_sets_and_changes_show_old_and_new() {
        let same = [want(
            "acme",
            "sa-manager",
            &["accounts:write", "accounts:read", "accounts:read"],
            None,
        )];
        let plan = plan_roles(&same, &current(), false).unwrap();
        assert_eq!(
            plan,
            RolePlan::default(),
            "order and repetition are not a change"
        );

        let changed = [
            want("acme", "sa-manager", &["accounts:read"], Some("read only")),
            want("acme", "new", &["logs:read", "metrics:read"], None),
        ];
        let plan = plan_roles(&changed, &current(), false).unwrap();
        assert_eq!(
            lines(&plan),
            [
                r#"~ role acme/sa-manager description: "" -> "read only""#,
                "~ role acme/sa-manager scopes: [accounts:read, accounts:write] -> [accounts:read]",
                "+ role acme/new (scopes [logs:read, metrics:read])",
            ]
        );
        let RoleStep::Update { body, .. } = &plan.upserts[0] else {
            panic!("{plan:?}");
        };
        assert_eq!(
            serde_json::to_value(body).unwrap(),
            serde_json::json!({"description": "read only", "scopes": ["accounts:read"]})
        );
    }

    #[test]
    fn prune_deletes_only_custom_roles_of_the_files_tenants() {
        let file = [want(
            "acme",
            "sa-manager",
            &["accounts:read", "accounts:write"],
            None,
        )];
        let plan = plan_roles(&file, &current(), true).unwrap();
        assert_eq!(
            lines(&plan),
            ["- role acme/old"],
            "not viewer, not globex's"
        );
        let plan = plan_roles(&file, &current(), false).unwrap();
        assert!(plan.deletes.is_empty(), "nothing is deleted without prune");
    }

    #[test]
    fn built_in_and_duplicate_roles_are_refused() {
        let err = plan_roles(
            &[want("acme", "viewer", &["metrics:read"], None)],
            &current(),
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("built in"), "{err}");
        let twice = [want("acme", "x", &[], None), want("acme", "x", &[], None)];
        let err = plan_roles(&twice, &current(), false).unwrap_err();
        assert!(err.to_string().contains("also in r.yaml"), "{err}");
    }
}
