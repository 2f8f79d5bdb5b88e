//! Where a filter hit's own instructions go, function by function: Node runs the module as
//! `tollgate-bench vm` does, under callgrind (`--dump-instr=yes`), and V8's code log
//! (`node --prof`) says which compiled wasm function each instruction address belongs to.
//! Deterministic, like `instructions`; the module must keep its function names (`make
//! bench-profile` builds one that does). Node's V8 is not Envoy's: read shares, not totals.

use anyhow::{Context, bail};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// One compiled wasm function in V8's code log: its address range and name.
struct Code {
    start: u64,
    end: u64,
    name: String,
}

/// The wasm functions V8 compiled, from its log: `code-creation,JS,4,<time>,<addr>,<size>,
/// <name>,...` (tier 4: TurboFan, the only tier with `--no-liftoff`).
fn compiled_wasm(log: &str) -> Vec<Code> {
    let mut codes: Vec<Code> = log
        .lines()
        .filter_map(|line| line.strip_prefix("code-creation,JS,4,"))
        .filter_map(|rest| {
            let mut fields = rest.split(',');
            let _time = fields.next()?;
            let start = u64::from_str_radix(fields.next()?.trim_start_matches("0x"), 16).ok()?;
            let size: u64 = fields.next()?.parse().ok()?;
            let name = fields.next()?.to_owned();
            Some(Code {
                start,
                end: start + size,
                name,
            })
        })
        .collect();
    codes.sort_by_key(|code| code.start);
    codes
}

/// Instructions per instruction address, from a callgrind dump made with `--dump-instr=yes`
/// (`positions: instr line`). A cost line's first position is absolute (`0x..`), relative
/// (`+n`, `-n`) or the same (`*`); the line after `calls=` is a call's inclusive cost, not
/// the caller's own, and is skipped.
fn costs_by_address(dump: &str) -> anyhow::Result<HashMap<u64, u64>> {
    if !dump.lines().any(|line| line == "positions: instr line") {
        bail!("the callgrind dump has no instruction positions (--dump-instr=yes)");
    }
    let mut costs = HashMap::new();
    let mut address: u64 = 0;
    let mut after_call = false;
    for line in dump.lines() {
        if line.starts_with("calls=") {
            after_call = true;
            continue;
        }
        let Some(first) = line.bytes().next() else {
            continue;
        };
        if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'*')) {
            continue;
        }
        let mut fields = line.split_whitespace();
        let position = fields.next().unwrap_or("*");
        address = match first {
            b'+' => address.wrapping_add(number(&position[1..])?),
            b'-' => address.wrapping_sub(number(&position[1..])?),
            b'*' => address,
            _ => number(position)?,
        };
        if std::mem::take(&mut after_call) {
            continue;
        }
        let _line = fields.next();
        if let Some(cost) = fields.next() {
            let cost: u64 = cost
                .parse()
                .with_context(|| format!("not a callgrind cost: {line:?}"))?;
            *costs.entry(address).or_insert(0) += cost;
        }
    }
    Ok(costs)
}

fn number(text: &str) -> anyhow::Result<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .with_context(|| format!("not a callgrind position: {text:?}"))
}

/// Runs `spec` (as `vm` builds it) in Node under callgrind and prints the wasm functions that
/// cost most, in instructions per request.
pub fn run(spec: &serde_json::Value, requests: usize, label: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dump = dir.path().join("callgrind.out");
    let log = dir.path().join("v8.log");
    let mut command = Command::new("valgrind");
    command
        .args([
            "--tool=callgrind",
            "--dump-instr=yes",
            "--smc-check=all-non-file",
        ])
        .arg(format!("--callgrind-out-file={}", dump.display()))
        .args(["node", "--no-liftoff", "--prof", "--no-logfile-per-isolate"])
        .arg(format!("--logfile={}", log.display()))
        .arg(crate::vm::driver())
        .arg(spec.to_string());
    crate::checked_output(
        &mut command,
        "node under valgrind (Debian's valgrind and nodejs)",
    )?;
    let codes = compiled_wasm(&std::fs::read_to_string(&log).context("V8's code log")?);
    if codes.is_empty() {
        bail!("V8 logged no compiled wasm function");
    }
    let costs = costs_by_address(&read(&dump)?)?;
    let mut by_function: HashMap<&str, u64> = HashMap::new();
    for (address, cost) in costs {
        let index = codes.partition_point(|code| code.start <= address);
        if let Some(code) = index.checked_sub(1).map(|i| &codes[i])
            && address < code.end
        {
            *by_function.entry(code.name.as_str()).or_insert(0) += cost;
        }
    }
    let mut ranked: Vec<(&str, u64)> = by_function.into_iter().collect();
    ranked.sort_by_key(|(_, cost)| std::cmp::Reverse(*cost));
    let total: u64 = ranked.iter().map(|(_, cost)| cost).sum();
    let per_request = |cost: u64| cost as f64 / requests as f64;
    println!();
    println!(
        "{label}: {:.0} wasm instructions per request in Node's V8 (callgrind, {requests} requests)",
        per_request(total)
    );
    for (name, cost) in ranked.iter().take(30) {
        let name = format!("{:#}", rustc_demangle::demangle(name));
        println!(
            "{:>8.0} {:>5.1} %  {}",
            per_request(*cost),
            *cost as f64 * 100.0 / total.max(1) as f64,
            name.chars().take(110).collect::<String>()
        );
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn callgrind_positions_and_calls() {
        let dump = "positions: instr line\nevents: Ir\nfn=(1) f\n0x100 0 5\n+4 0 2\n*  0 1\ncalls=1 0x200 0\n+8 0 1000\n-4 0 3\n";
        let costs = costs_by_address(dump).unwrap();
        assert_eq!(costs[&0x100], 5);
        assert_eq!(costs[&0x104], 3, "+4 and *");
        assert_eq!(
            costs.get(&0x10c),
            None,
            "a call's inclusive cost is not the caller's"
        );
        assert_eq!(costs[&0x108], 3, "-4 from 0x10c");
    }

    #[test]
    fn v8_code_log() {
        let log = "code-creation,Builtin,2,1,0x10,4,X\ncode-creation,JS,4,9,0x2000,16,sha256,0x1,*\ncode-creation,JS,4,9,0x1000,8,dlmalloc,0x1,*\n";
        let codes = compiled_wasm(log);
        assert_eq!(codes.len(), 2);
        assert_eq!((codes[0].start, codes[0].end), (0x1000, 0x1008));
        assert_eq!(codes[1].name, "sha256");
    }
}
