//! The attribute's arguments: `#[stop_machine::main(workers = 4, pin = false)]`.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitStr, Path, Token};

/// Which attribute is expanding: the defaults and the error messages differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `#[stop_machine::main]`.
    Main,
    /// `#[stop_machine::test]`.
    Test,
}

impl Kind {
    /// The attribute as a user writes it, for error messages.
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            Kind::Main => "#[stop_machine::main]",
            Kind::Test => "#[stop_machine::test]",
        }
    }
}

/// The arguments every attribute accepts, in the order the docs list them.
pub(crate) const NAMES: &[&str] = &[
    "workers",
    "pin",
    "thread_name",
    "event_interval",
    "per_core",
    "stop_timeout_ms",
    "slow_stop_warning_ms",
    "stop_a_lot",
    "boost_stragglers",
    "crate",
];

/// The parsed arguments. `None` leaves the `Builder`'s default (or, for
/// `workers` and `pin` under `#[stop_machine::test]`, the test default).
#[derive(Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(crate) struct Args {
    pub(crate) workers: Option<usize>,
    pub(crate) pin: Option<bool>,
    pub(crate) thread_name: Option<String>,
    pub(crate) event_interval: Option<u32>,
    pub(crate) per_core: Option<bool>,
    pub(crate) stop_timeout_ms: Option<u64>,
    pub(crate) slow_stop_warning_ms: Option<u64>,
    pub(crate) stop_a_lot: Option<u32>,
    pub(crate) boost_stragglers: Option<bool>,
    pub(crate) krate: Option<Path>,
}

/// Parses the tokens between the attribute's parentheses.
///
/// Every error is a `syn::Error` spanned at the offending argument or value:
/// an unknown name, a name given twice, a name without `= value`, a value of
/// the wrong kind (`workers = "4"`, `pin = 1`, `workers = n`), or one out of
/// range (`workers = 0`, `event_interval = 5_000_000_000`).
pub(crate) fn parse(kind: Kind, tokens: TokenStream) -> syn::Result<Args> {
    let mut args = Args::default();
    let parser = syn::meta::parser(|meta| args.set(kind, meta));
    parser.parse2(tokens)?;
    Ok(args)
}

impl Args {
    fn set(&mut self, kind: Kind, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let name = match meta.path.get_ident() {
            Some(ident) => ident.to_string(),
            None => return Err(unknown(kind, &meta.path, "a path")),
        };
        if !NAMES.contains(&name.as_str()) {
            return Err(unknown(kind, &meta.path, &format!("`{name}`")));
        }
        if !meta.input.peek(Token![=]) {
            let example = match name.as_str() {
                "workers" | "event_interval" => format!("{name} = 4"),
                "pin" | "per_core" | "boost_stragglers" => format!("{name} = true"),
                "thread_name" => format!("{name} = \"app\""),
                "crate" => format!("{name} = my_reexport::stop_machine"),
                _ => format!("{name} = 100"),
            };
            return Err(syn::Error::new_spanned(
                &meta.path,
                format!("`{name}` needs a value: `{example}`"),
            ));
        }
        let path = meta.path.clone();
        let value = meta.value()?;
        if name == "crate" {
            let krate = if value.peek(LitStr) {
                let lit: LitStr = value.parse()?;
                lit.parse::<Path>().map_err(|_| {
                    syn::Error::new(lit.span(), "`crate` takes a path, e.g. `crate = ::stop_machine`")
                })?
            } else {
                value.parse::<Path>().map_err(|e| {
                    syn::Error::new(e.span(), "`crate` takes a path, e.g. `crate = ::stop_machine`")
                })?
            };
            return once(&mut self.krate, krate, &path);
        }
        let expr: Expr = value.parse()?;
        match name.as_str() {
            "workers" => {
                let n: usize = int(&expr, &name, "a number of workers")?;
                if n == 0 {
                    return Err(syn::Error::new_spanned(&expr, "`workers` must be at least 1"));
                }
                once(&mut self.workers, n, &path)
            }
            "pin" => once(&mut self.pin, boolean(&expr, &name)?, &path),
            "per_core" => once(&mut self.per_core, boolean(&expr, &name)?, &path),
            "boost_stragglers" => once(&mut self.boost_stragglers, boolean(&expr, &name)?, &path),
            "thread_name" => once(&mut self.thread_name, string(&expr, &name)?, &path),
            "event_interval" => {
                let n: u32 = int(&expr, &name, "task polls between driver turns")?;
                if n == 0 {
                    return Err(syn::Error::new_spanned(
                        &expr,
                        "`event_interval` must be at least 1",
                    ));
                }
                once(&mut self.event_interval, n, &path)
            }
            "stop_timeout_ms" => once(
                &mut self.stop_timeout_ms,
                int(&expr, &name, "milliseconds")?,
                &path,
            ),
            "slow_stop_warning_ms" => {
                let ms = int(&expr, &name, "milliseconds, 0 for no warning")?;
                once(&mut self.slow_stop_warning_ms, ms, &path)
            }
            "stop_a_lot" => {
                let n = int(&expr, &name, "task polls between stops, 0 for none")?;
                once(&mut self.stop_a_lot, n, &path)
            }
            _ => unreachable!("every name of NAMES is handled"),
        }
    }
}

/// The error for an argument name this attribute does not know, with a hint
/// for tokio's names.
fn unknown(kind: Kind, path: &Path, what: &str) -> syn::Error {
    let expected = NAMES
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let hint = match path.get_ident().map(|i| i.to_string()).as_deref() {
        Some("worker_threads") => " (tokio's `worker_threads` is `workers` here)".to_owned(),
        Some("flavor") => {
            " (there is one flavor: a worker per CPU, each a tokio current_thread driver)".to_owned()
        }
        Some("stop_timeout" | "slow_stop_warning") => {
            " (durations are whole milliseconds, with an `_ms` suffix on the name)".to_owned()
        }
        Some("cpus") => " (build a runtime with `Builder::cpus` for a CPU mask)".to_owned(),
        _ => String::new(),
    };
    syn::Error::new_spanned(
        path,
        format!(
            "{} has no argument {what}{hint}; expected one of {expected}",
            kind.attribute()
        ),
    )
}

/// Stores `value` unless the argument was already given.
fn once<T>(slot: &mut Option<T>, value: T, path: &Path) -> syn::Result<()> {
    if slot.is_some() {
        let name = path.get_ident().map_or_else(String::new, |i| i.to_string());
        return Err(syn::Error::new_spanned(path, format!("`{name}` is given twice")));
    }
    *slot = Some(value);
    Ok(())
}

fn literal(expr: &Expr) -> Option<&Lit> {
    match expr {
        Expr::Lit(ExprLit { lit, attrs, .. }) if attrs.is_empty() => Some(lit),
        _ => None,
    }
}

/// An integer literal that fits `T`; `unit` says what it counts.
fn int<T>(expr: &Expr, name: &str, unit: &str) -> syn::Result<T>
where
    T: std::str::FromStr + TryFrom<u128>,
    T::Err: std::fmt::Display,
{
    match literal(expr) {
        Some(Lit::Int(lit)) => {
            if !matches!(lit.suffix(), "" | "u8" | "u16" | "u32" | "u64" | "u128" | "usize") {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("`{name}` takes an unsuffixed or unsigned integer literal"),
                ));
            }
            let wide: u128 = lit.base10_parse().map_err(|e| syn::Error::new(lit.span(), e))?;
            T::try_from(wide).map_err(|_| {
                syn::Error::new(
                    lit.span(),
                    format!(
                        "`{name}` = {wide} is out of range ({})",
                        std::any::type_name::<T>()
                    ),
                )
            })
        }
        _ => Err(syn::Error::new(
            expr.span(),
            format!("`{name}` takes an integer literal ({unit}), e.g. `{name} = 4`"),
        )),
    }
}

fn boolean(expr: &Expr, name: &str) -> syn::Result<bool> {
    match literal(expr) {
        Some(Lit::Bool(lit)) => Ok(lit.value),
        _ => Err(syn::Error::new(
            expr.span(),
            format!("`{name}` takes `true` or `false`"),
        )),
    }
}

fn string(expr: &Expr, name: &str) -> syn::Result<String> {
    match literal(expr) {
        Some(Lit::Str(lit)) => Ok(lit.value()),
        _ => Err(syn::Error::new(
            expr.span(),
            format!("`{name}` takes a string literal, e.g. `{name} = \"app\"`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(src: &str) -> TokenStream {
        src.parse().expect("test input tokenizes")
    }

    fn ok(kind: Kind, src: &str) -> Args {
        match parse(kind, tokens(src)) {
            Ok(args) => args,
            Err(e) => panic!("unexpected error for {src:?}: {e}"),
        }
    }

    fn err(src: &str) -> String {
        match parse(Kind::Main, tokens(src)) {
            Ok(args) => panic!("expected an error for {src:?}, parsed {args:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// The error and the source text from where its span starts (tokens
    /// parsed from a string keep their columns, with proc-macro2's
    /// `span-locations`, a dev-only feature).
    fn err_at(src: &str) -> (String, &str) {
        let e = parse(Kind::Main, tokens(src)).expect_err("an error");
        let start = e.span().start();
        assert_eq!(start.line, 1, "one-line inputs");
        (e.to_string(), &src[start.column..])
    }

    #[test]
    fn no_arguments_leave_every_default() {
        assert_eq!(ok(Kind::Main, r#""#), Args::default());
        assert_eq!(ok(Kind::Test, r#""#), Args::default());
    }

    #[test]
    fn every_argument() {
        let args = ok(
            Kind::Main,
            r#"workers = 3, pin = false, thread_name = "db", event_interval = 31, per_core = true, stop_timeout_ms = 250, slow_stop_warning_ms = 0, stop_a_lot = 50u32, boost_stragglers = false, crate = ::my::stop_machine,"#,
        );
        assert_eq!(
            args,
            Args {
                workers: Some(3),
                pin: Some(false),
                thread_name: Some("db".into()),
                event_interval: Some(31),
                per_core: Some(true),
                stop_timeout_ms: Some(250),
                slow_stop_warning_ms: Some(0),
                stop_a_lot: Some(50),
                boost_stragglers: Some(false),
                krate: Some(syn::parse_quote!(::my::stop_machine)),
            }
        );
    }

    #[test]
    fn crate_as_a_string_as_tokio_spells_it() {
        let args = ok(Kind::Test, r#"crate = "reexport::sm""#);
        assert_eq!(args.krate, Some(syn::parse_quote!(reexport::sm)));
        let args = ok(Kind::Test, r#"crate = crate"#);
        assert_eq!(args.krate, Some(syn::parse_quote!(crate)));
    }

    #[test]
    fn unknown_argument() {
        let (e, at) = err_at(r#"workers = 2, cores = 4"#);
        assert!(
            e.starts_with("#[stop_machine::main] has no argument `cores`; expected one of `workers`, "),
            "{e}"
        );
        assert_eq!(at, "cores = 4");
        let e = parse(Kind::Test, tokens("nope = 1")).unwrap_err().to_string();
        assert!(
            e.starts_with("#[stop_machine::test] has no argument `nope`"),
            "{e}"
        );
        let e = err(r#"a::b = 1"#);
        assert!(e.contains("has no argument a path"), "{e}");
    }

    #[test]
    fn tokio_names_get_a_hint() {
        assert!(err(r#"worker_threads = 4"#).contains("tokio's `worker_threads` is `workers` here"));
        assert!(err(r#"flavor = "multi_thread""#).contains("there is one flavor"));
        assert!(err(r#"stop_timeout = 5"#).contains("`_ms` suffix"));
        assert!(err(r#"cpus = "0-3""#).contains("Builder::cpus"));
    }

    #[test]
    fn wrong_literal_types() {
        let (e, at) = err_at(r#"workers = "4""#);
        assert_eq!(
            e,
            "`workers` takes an integer literal (a number of workers), e.g. `workers = 4`"
        );
        assert_eq!(at, "\"4\"");
        assert_eq!(err(r#"pin = 1"#), "`pin` takes `true` or `false`");
        assert_eq!(err(r#"per_core = "yes""#), "`per_core` takes `true` or `false`");
        assert_eq!(
            err(r#"boost_stragglers = 0"#),
            "`boost_stragglers` takes `true` or `false`"
        );
        assert_eq!(
            err(r#"thread_name = db"#),
            "`thread_name` takes a string literal, e.g. `thread_name = \"app\"`"
        );
        assert!(
            err(r#"stop_timeout_ms = 1.5"#)
                .starts_with("`stop_timeout_ms` takes an integer literal (milliseconds)")
        );
        assert!(err(r#"event_interval = N"#).starts_with("`event_interval` takes an integer literal"));
        assert!(err(r#"workers = -1"#).starts_with("`workers` takes an integer literal"));
        assert_eq!(
            err(r#"workers = 4i32"#),
            "`workers` takes an unsuffixed or unsigned integer literal"
        );
        assert!(err(r#"crate = 4"#).starts_with("`crate` takes a path"));
        assert!(err(r#"crate = "not a path""#).starts_with("`crate` takes a path"));
    }

    #[test]
    fn values_out_of_range() {
        assert_eq!(err(r#"workers = 0"#), "`workers` must be at least 1");
        assert_eq!(
            err(r#"event_interval = 0"#),
            "`event_interval` must be at least 1"
        );
        assert_eq!(
            err(r#"event_interval = 4294967296"#),
            "`event_interval` = 4294967296 is out of range (u32)"
        );
        assert_eq!(
            err(r#"stop_a_lot = 4294967296"#),
            "`stop_a_lot` = 4294967296 is out of range (u32)"
        );
        // Zero is meaningful for these: a zero bound, no warning, no stop-a-lot.
        let args = ok(
            Kind::Main,
            r#"stop_timeout_ms = 0, slow_stop_warning_ms = 0, stop_a_lot = 0"#,
        );
        assert_eq!(
            (args.stop_timeout_ms, args.slow_stop_warning_ms, args.stop_a_lot),
            (Some(0), Some(0), Some(0))
        );
    }

    #[test]
    fn missing_values() {
        let (e, at) = err_at(r#"pin"#);
        assert_eq!(e, "`pin` needs a value: `pin = true`");
        assert_eq!(at, "pin");
        assert_eq!(err(r#"workers"#), "`workers` needs a value: `workers = 4`");
        assert_eq!(err(r#"workers(4)"#), "`workers` needs a value: `workers = 4`");
        assert_eq!(
            err(r#"thread_name"#),
            "`thread_name` needs a value: `thread_name = \"app\"`"
        );
    }

    #[test]
    fn an_argument_given_twice() {
        let (e, at) = err_at(r#"workers = 2, pin = true, workers = 3"#);
        assert_eq!(e, "`workers` is given twice");
        assert_eq!(at, "workers = 3");
    }

    #[test]
    fn malformed_lists() {
        // syn's own messages, at the offending token.
        assert!(parse(Kind::Main, tokens(r#"workers = 2 pin = false"#)).is_err());
        assert!(parse(Kind::Main, tokens(r#", workers = 2"#)).is_err());
        assert!(parse(Kind::Main, tokens(r#""workers""#)).is_err());
        // A trailing comma is fine.
        assert_eq!(ok(Kind::Main, r#"workers = 2,"#).workers, Some(2));
    }
}
