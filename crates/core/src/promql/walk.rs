//! Walking a parsed query: every vector selector, and `info()` calls.

use super::{INFO, QueryError};
use promql_parser::label::Matcher as PromMatcher;
use promql_parser::parser::{Expr, VectorSelector};

/// `info(v)` joins the labels of every matching info series (`target_info`), whatever its
/// labels: give it an empty selector as its second argument, which [`Enforcer::restrict`] then
/// fills with the policy (`info(v, {ns="a"})`), as for any other selector.
pub(super) fn complete_info_calls(expr: &mut Expr) {
    let mut stack = vec![expr];
    while let Some(expr) = stack.pop() {
        match expr {
            Expr::Call(c) => {
                if c.func.name == INFO && c.args.args.len() == 1 {
                    let empty = VectorSelector::new(None, promql_parser::label::Matchers::empty());
                    c.args.args.push(Box::new(Expr::VectorSelector(empty)));
                }
                stack.extend(c.args.args.iter_mut().map(|a| a.as_mut()));
            }
            Expr::Aggregate(a) => {
                stack.push(&mut a.expr);
                if let Some(param) = &mut a.param {
                    stack.push(param);
                }
            }
            Expr::Unary(u) => stack.push(&mut u.expr),
            Expr::Binary(b) => {
                stack.push(&mut b.lhs);
                stack.push(&mut b.rhs);
            }
            Expr::Paren(p) => stack.push(&mut p.expr),
            Expr::Subquery(s) => stack.push(&mut s.expr),
            _ => {}
        }
    }
}

/// Whether an `info()` call lacks its selector argument.
pub(super) fn has_bare_info(expr: &Expr) -> bool {
    let mut stack = vec![expr];
    while let Some(expr) = stack.pop() {
        match expr {
            Expr::Call(c) => {
                if c.func.name == INFO && c.args.args.len() < 2 {
                    return true;
                }
                stack.extend(c.args.args.iter().map(|a| a.as_ref()));
            }
            Expr::Aggregate(a) => {
                stack.push(&a.expr);
                if let Some(param) = &a.param {
                    stack.push(param);
                }
            }
            Expr::Unary(u) => stack.push(&u.expr),
            Expr::Binary(b) => {
                stack.push(&b.lhs);
                stack.push(&b.rhs);
            }
            Expr::Paren(p) => stack.push(&p.expr),
            Expr::Subquery(s) => stack.push(&s.expr),
            _ => {}
        }
    }
    false
}

/// Calls `f` on every vector selector (including those inside matrix selectors).
pub(super) fn visit(
    expr: &mut Expr,
    f: &mut impl FnMut(&mut VectorSelector) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    match expr {
        Expr::Aggregate(a) => {
            visit(&mut a.expr, f)?;
            if let Some(param) = &mut a.param {
                visit(param, f)?;
            }
        }
        Expr::Unary(u) => visit(&mut u.expr, f)?,
        Expr::Binary(b) => {
            visit(&mut b.lhs, f)?;
            visit(&mut b.rhs, f)?;
        }
        Expr::Paren(p) => visit(&mut p.expr, f)?,
        Expr::Subquery(s) => visit(&mut s.expr, f)?,
        Expr::Call(c) => {
            for arg in &mut c.args.args {
                visit(arg, f)?;
            }
        }
        Expr::VectorSelector(vs) => f(vs)?,
        Expr::MatrixSelector(ms) => f(&mut ms.vs)?,
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        // The parser never produces extensions; refuse anything we cannot see into.
        Expr::Extension(_) => return Err(QueryError::VerificationFailed),
    }
    Ok(())
}

/// The AND-groups of a selector: one, or one per `or` branch inside the braces.
pub(super) fn groups(vs: &VectorSelector) -> Vec<&Vec<PromMatcher>> {
    if vs.matchers.or_matchers.is_empty() {
        vec![&vs.matchers.matchers]
    } else {
        vs.matchers.or_matchers.iter().collect()
    }
}
