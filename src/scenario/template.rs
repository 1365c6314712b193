//! `{{ expression }}` holes in scenario strings, parsed once into `config::Template`s.
//!
//! Expressions: a variable (`post_id`, `accounts.username` for a data-file column), a built-in
//! (`user_index`, `counter`, `now`, `now_ms`, `uuid()`), a call (`random_int(1, 100)`,
//! `random_choice("a", "b")`, `pool("posts")`), or `env.NAME` (read when the file is loaded).

use crate::config::{Escape, Expr, Part, Template};

/// What a template may refer to, and how errors are placed.
pub trait Scope {
    /// The slot of a user variable, if one is defined under `name`.
    fn var(&self, name: &str) -> Option<usize>;
    /// The index of a pool, if one is named `name` anywhere in the file.
    fn pool(&self, name: &str) -> Option<usize>;
    /// Whether the template may read the response (`json.PATH`, `status`): failure messages,
    /// filled in once the response is there.
    fn response(&self) -> bool {
        false
    }
}

/// A template error: the byte offset in the string (from its first character) and the text.
#[derive(Debug, PartialEq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

/// Parses `text` into literal parts (passed through `lit`, e.g. percent-encoding) and holes
/// written with `escape`.
pub fn parse(
    text: &str,
    escape: Escape,
    scope: &dyn Scope,
    lit: &dyn Fn(&str) -> String,
) -> Result<Template, TemplateError> {
    let mut template = Template::default();
    let mut rest = text;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            template.push(Part::Lit(lit(&rest[..open])));
        }
        let inner_start = open + 2;
        let Some(close) = rest[inner_start..].find("}}") else {
            return Err(TemplateError { offset: offset + open, message: "`{{` without a closing `}}`".into() });
        };
        let inner = &rest[inner_start..inner_start + close];
        let lead = inner.len() - inner.trim_start().len();
        let expr = parse_expr(inner.trim(), scope)
            .map_err(|message| TemplateError { offset: offset + inner_start + lead, message })?;
        match expr {
            Parsed::Expr(expr) => template.push(Part::Expr(expr, escape)),
            Parsed::Constant(text) => template.push(Part::Lit(lit(&text))),
        }
        let consumed = inner_start + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        template.push(Part::Lit(lit(rest)));
    }
    Ok(template)
}

/// Whether `text` is exactly one hole (`"{{ x }}"`), so a JSON body can keep its value's type.
pub fn is_single_hole(text: &str) -> bool {
    let trimmed = text.trim();
    trimmed.starts_with("{{")
        && trimmed.ends_with("}}")
        && trimmed[2..].find("{{").is_none()
        && trimmed.matches("}}").count() == 1
}

enum Parsed {
    Expr(Expr),
    /// Known when the file is loaded (`env.NAME`).
    Constant(String),
}

const BUILTINS: &str = "user_index, counter, now, now_ms, uuid(), random_int(a, b), random_choice(\"a\", …), \
                        pool(\"name\"), env.NAME";

fn parse_expr(text: &str, scope: &dyn Scope) -> Result<Parsed, String> {
    if text.is_empty() {
        return Err("empty `{{ }}`".into());
    }
    if let Some(open) = text.find('(') {
        let name = text[..open].trim();
        let Some(args) = text[open + 1..].strip_suffix(')') else {
            return Err(format!("`{text}`: expected `)` at the end of the call"));
        };
        let args = parse_args(args).map_err(|e| format!("`{text}`: {e}"))?;
        return call(name, &args, scope).map_err(|e| format!("`{text}`: {e}"));
    }
    if scope.response() {
        if let Some(path) = text.strip_prefix("json.") {
            return Ok(Parsed::Expr(Expr::Json(super::to_pointer(path))));
        }
        if text == "status" && scope.var("status").is_none() {
            return Ok(Parsed::Expr(Expr::Status));
        }
    }
    if let Some(name) = text.strip_prefix("env.") {
        return std::env::var(name)
            .map(Parsed::Constant)
            .map_err(|_| format!("environment variable {name} is not set (used as `env.{name}`)"));
    }
    if !text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
        return Err(format!("`{text}` is not a variable name or a call; expected one of: {BUILTINS}"));
    }
    Ok(Parsed::Expr(match text {
        "user_index" => Expr::UserIndex,
        "counter" => Expr::Counter,
        "now" => Expr::Now,
        "now_ms" => Expr::NowMs,
        name => Expr::Var(scope.var(name).ok_or_else(|| {
            format!(
                "unknown variable `{name}`; variables come from [vars], captures and data files, \
                 built-ins are {BUILTINS}"
            )
        })?),
    }))
}

#[derive(Debug, PartialEq)]
enum Arg {
    Int(i64),
    Str(String),
}

fn parse_args(text: &str) -> Result<Vec<Arg>, String> {
    let mut args = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').ok_or("unterminated string argument")?;
            args.push(Arg::Str(quoted[..end].to_string()));
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let token = rest[..end].trim();
            let value = token.parse().map_err(|_| format!("argument `{token}` is not an integer or a \"string\""))?;
            args.push(Arg::Int(value));
            rest = &rest[end..];
        }
        match rest.strip_prefix(',') {
            Some(after) => rest = after.trim_start(),
            None if rest.is_empty() => {}
            None => return Err(format!("expected `,` before `{rest}`")),
        }
    }
    Ok(args)
}

fn call(name: &str, args: &[Arg], scope: &dyn Scope) -> Result<Parsed, String> {
    Ok(Parsed::Expr(match (name, args) {
        ("random_int", [Arg::Int(low), Arg::Int(high)]) if low <= high => Expr::RandomInt(*low, *high),
        ("random_int", [Arg::Int(_), Arg::Int(_)]) => return Err("the low bound is above the high bound".into()),
        ("random_int", _) => return Err("random_int takes two integers: random_int(1, 100)".into()),
        ("random_choice", args) if !args.is_empty() => Expr::Choice(
            args.iter()
                .map(|a| match a {
                    Arg::Str(s) => s.clone(),
                    Arg::Int(i) => i.to_string(),
                })
                .collect(),
        ),
        ("random_choice", _) => return Err("random_choice needs at least one option".into()),
        ("uuid", []) => Expr::Uuid,
        ("pool", [Arg::Str(pool)]) => {
            Expr::Pool(scope.pool(pool).ok_or_else(|| format!("no step pushes to a pool named \"{pool}\""))?)
        }
        ("pool", _) => return Err("pool takes the pool's name: pool(\"posts\")".into()),
        ("env", [Arg::Str(var)]) => {
            return std::env::var(var)
                .map(Parsed::Constant)
                .map_err(|_| format!("environment variable {var} is not set"))
        }
        (other, _) => return Err(format!("unknown function `{other}`; expected one of: {BUILTINS}")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Names;
    impl Scope for Names {
        fn var(&self, name: &str) -> Option<usize> {
            ["id", "accounts.username"].iter().position(|n| *n == name)
        }
        fn pool(&self, name: &str) -> Option<usize> {
            (name == "posts").then_some(0)
        }
    }

    fn parse_raw(text: &str) -> Result<Template, TemplateError> {
        parse(text, Escape::Raw, &Names, &|s| s.to_string())
    }

    #[test]
    fn holes_and_literals() {
        let t = parse_raw("/posts/{{ id }}/comments?u={{accounts.username}}").unwrap();
        assert_eq!(t.parts.len(), 4);
        assert!(matches!(t.parts[1], Part::Expr(Expr::Var(0), Escape::Raw)));
        assert!(matches!(t.parts[3], Part::Expr(Expr::Var(1), Escape::Raw)));
        assert!(matches!(parse_raw("{{ random_int(1, 5) }}").unwrap().parts[0], Part::Expr(Expr::RandomInt(1, 5), _)));
        let choice = parse_raw(r#"{{ random_choice("a", "b c") }}"#).unwrap();
        assert!(matches!(&choice.parts[0], Part::Expr(Expr::Choice(o), _) if o == &["a", "b c"]));
        assert!(matches!(parse_raw("{{ pool(\"posts\") }}").unwrap().parts[0], Part::Expr(Expr::Pool(0), _)));
        assert_eq!(parse_raw("plain").unwrap().as_literal().as_deref(), Some("plain"));
    }

    #[test]
    fn env_is_read_at_load_time() {
        std::env::set_var("SWARMER_TEMPLATE_TEST", "xyz");
        assert_eq!(parse_raw("a{{ env.SWARMER_TEMPLATE_TEST }}b").unwrap().as_literal().as_deref(), Some("axyzb"));
        assert!(parse_raw("{{ env.SWARMER_SURELY_UNSET_VAR }}").unwrap_err().message.contains("not set"));
    }

    #[test]
    fn errors_say_where_and_what() {
        let err = parse_raw("/x/{{ nope }}").unwrap_err();
        assert_eq!(err.offset, 6);
        assert!(err.message.contains("unknown variable `nope`"), "{}", err.message);
        assert!(parse_raw("/x/{{ id").unwrap_err().message.contains("closing"));
        assert!(parse_raw("{{ random_int(5, 1) }}").unwrap_err().message.contains("above"));
        assert!(parse_raw("{{ pool(\"nope\") }}").unwrap_err().message.contains("no step pushes"));
        assert!(parse_raw("{{ frob() }}").unwrap_err().message.contains("unknown function"));
        assert!(parse_raw("{{ a + b }}").unwrap_err().message.contains("not a variable"));
    }

    #[test]
    fn single_holes() {
        assert!(is_single_hole("{{ id }}"));
        assert!(!is_single_hole("post {{ id }}"));
        assert!(!is_single_hole("{{ a }}{{ b }}"));
    }
}
