//! Output: the API's JSON as the server sent it (`--output json`), the same as YAML
//! (`--output yaml`), or aligned tables.

use super::Output;
use crate::api::{AccountDto, IssuedTokenDto, TokenDto};
use serde::Serialize;

/// Prints `value` as pretty JSON, or the text `table` makes of it.
pub fn print<T: Serialize>(
    output: Output,
    value: &T,
    table: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Yaml => print!("{}", serde_yaml_ng::to_string(value)?),
        Output::Table => print!("{}", table(value)),
    }
    Ok(())
}

/// A table cell: `-` for an empty or absent value. Control characters are shown escaped: a
/// description may hold a line break, and a cell must not start a new row or move the cursor.
pub fn text(value: &str) -> String {
    if value.is_empty() {
        "-".into()
    } else {
        crate::model::escape_control(value).into_owned()
    }
}

/// An optional cell: `-` when absent.
pub fn optional(value: Option<&str>) -> String {
    value.map_or_else(|| "-".into(), text)
}

/// A column: its title and how a row gives its cell.
pub type Column<T> = (&'static str, fn(&T) -> String);

/// Left-aligned columns, two spaces apart.
pub fn render_table<T>(columns: &[Column<T>], rows: &[T]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|(_, cell)| cell(row)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (title, _))| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([title.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut line = |values: Vec<String>| {
        let parts: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(
        columns
            .iter()
            .map(|(title, _)| (*title).to_owned())
            .collect(),
    );
    for row in cells {
        line(row);
    }
    out
}

pub const ACCOUNT_COLUMNS: &[Column<AccountDto>] = &[
    ("ID", |a| a.id.to_string()),
    ("TENANT", |a| text(&a.tenant)),
    ("NAME", |a| text(&a.name)),
    ("ROLE", |a| text(&a.role)),
    ("LABEL POLICY", |a| text(&a.label_policy)),
    ("DISABLED", |a| a.disabled.to_string()),
    ("CREATED", |a| text(&a.created_at)),
];

pub const TOKEN_COLUMNS: &[Column<TokenDto>] = &[
    ("ID", |t| t.id.to_string()),
    ("NAME", |t| text(&t.name)),
    ("HINT", |t| text(&t.hint)),
    ("CREATED", |t| text(&t.created_at)),
    ("EXPIRES", |t| optional(t.expires_at.as_deref())),
    ("LAST USED", |t| optional(t.last_used_at.as_deref())),
];

/// One account as a table, with the other tenants it may read when there are any.
pub fn account_table(account: &AccountDto) -> String {
    let mut out = render_table(ACCOUNT_COLUMNS, std::slice::from_ref(account));
    if !account.read_tenants.is_empty() {
        out.push_str(&format!(
            "Also reads tenants: {}\n",
            account.read_tenants.join(",")
        ));
    }
    out
}

/// One token's metadata as a table.
pub fn token_table(token: &TokenDto) -> String {
    render_table(TOKEN_COLUMNS, std::slice::from_ref(token))
}

/// A token just issued: its metadata, then its value, which is shown this once.
pub fn issued_token_table(issued: &IssuedTokenDto) -> String {
    format!(
        "{}\nToken (shown once, store it now):\n{}\n",
        token_table(&issued.metadata),
        text(&issued.token)
    )
}
