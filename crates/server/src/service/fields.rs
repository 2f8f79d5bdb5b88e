//! Input validation: names, free text, e-mail addresses and label policies, each refused with
//! the field it came from.

use super::{Admin, Caller, ServiceError};
use crate::model::Name;
use tollgate_core::selector::{LimitError, SelectorError};
use tollgate_core::{Policy, PolicyLimits};

pub const MAX_DESCRIPTION_CHARS: usize = 400;
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;
pub const MAX_EMAIL_CHARS: usize = 254;

pub(super) fn field_error(field: &'static str, problem: impl std::fmt::Display) -> ServiceError {
    ServiceError::InvalidField(format!("{field}: {problem}"))
}

pub(super) fn parse_name(field: &'static str, value: &str) -> Result<Name, ServiceError> {
    Name::parse(value).map_err(|err| field_error(field, err))
}

pub(super) fn check_text(
    field: &'static str,
    value: &str,
    max_chars: usize,
) -> Result<(), ServiceError> {
    let len = value.chars().count();
    if len > max_chars {
        return Err(field_error(
            field,
            format!("at most {max_chars} characters, got {len}"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(field_error(field, "must not contain control characters"));
    }
    Ok(())
}

pub(super) fn check_email(value: &str) -> Result<(), ServiceError> {
    if value.is_empty() {
        return Ok(());
    }
    check_text("ownerEmail", value, MAX_EMAIL_CHARS)?;
    let valid = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && !value.chars().any(char::is_whitespace)
    });
    if valid {
        Ok(())
    } else {
        Err(field_error("ownerEmail", "must look like name@domain"))
    }
}

/// What the server makes of a label policy text, for the console's live check.
#[derive(Debug)]
pub enum PolicyValidation {
    /// Accepted as the policy of a new account; `within_ceiling`: the caller may also grant
    /// it (it is inside the caller's own policy).
    Valid {
        policy: Policy,
        within_ceiling: bool,
    },
    /// Refused with the error an account write would get; `position` is a byte offset into
    /// the text when the parser knows where.
    Invalid {
        error: ServiceError,
        position: Option<usize>,
    },
}

impl Admin {
    /// The limits every stored policy is held to.
    pub fn policy_limits(&self) -> &PolicyLimits {
        &self.config.policy_limits
    }

    /// Parses a label policy and holds it to the configured limits; on failure, also where in
    /// the text (when the parser knows).
    fn check_policy(&self, text: &str) -> Result<Policy, (ServiceError, Option<usize>)> {
        let policy = Policy::parse(text).map_err(|err| {
            let position = err.position();
            let error = match err {
                // Well-formed, but a regex the upstream would read differently: refused as a
                // policy we will not enforce, not as malformed input.
                SelectorError::UnsupportedRegex { .. } => {
                    ServiceError::LabelPolicyRegex(format!("labelPolicy: {err}"))
                }
                err => field_error("labelPolicy", err),
            };
            (error, position)
        })?;
        policy
            .validate(&self.config.policy_limits)
            .map_err(|err| match err {
                LimitError::SelectsNothing { .. } => {
                    ServiceError::LabelPolicyEmpty(format!("labelPolicy: {err}"))
                }
                err => ServiceError::LabelPolicyLimit(format!("labelPolicy: {err}")),
            })
            .map_err(|error| (error, None))?;
        Ok(policy)
    }

    /// Parses a label policy and holds it to the configured limits.
    pub(super) fn parse_policy(&self, text: &str) -> Result<Policy, ServiceError> {
        self.check_policy(text).map_err(|(error, _)| error)
    }

    /// The same check an account write makes, answered rather than refused: nothing is
    /// stored or audited.
    pub fn validate_policy(&self, caller: &Caller, text: &str) -> PolicyValidation {
        match self.check_policy(text) {
            Ok(policy) => PolicyValidation::Valid {
                within_ceiling: caller.policy.contains(&policy),
                policy,
            },
            Err((error, position)) => PolicyValidation::Invalid { error, position },
        }
    }
}
