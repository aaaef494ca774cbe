//! From `async fn` to a sync `fn` that builds a runtime and blocks on the body.

use crate::args::{self, Args, Kind};
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::{AttrStyle, Attribute, Ident, ItemFn, ReturnType, Type};

/// Expands `#[stop_machine::main(args)]` or `#[stop_machine::test(args)]` on
/// `item`.
///
/// On an error the output is still the expanded function, built with the
/// default arguments, followed by the errors as `compile_error!`s: the user
/// sees our message, not a second one from rustc about an `async fn main`,
/// and IDEs keep resolving the function's body.
pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let input: ItemFn = match syn::parse2(item.clone()) {
        Ok(input) => input,
        Err(e) => {
            let msg = format!("{} applies to an `async fn`: {e}", kind.attribute());
            let mut tokens = item;
            tokens.extend(syn::Error::new(e.span(), msg).into_compile_error());
            return tokens;
        }
    };
    let mut errors = check(kind, &input).err();
    let args = args::parse(kind, args).unwrap_or_else(|e| {
        combine(&mut errors, e);
        Args::default()
    });
    let mut tokens = function(kind, &args, input);
    if let Some(e) = errors {
        tokens.extend(e.into_compile_error());
    }
    tokens
}

fn combine(errors: &mut Option<syn::Error>, e: syn::Error) {
    match errors {
        Some(errors) => errors.combine(e),
        None => *errors = Some(e),
    }
}

/// The function's own mistakes: not `async`, arguments where the caller
/// (the program's start, the test harness) passes none, a second test
/// attribute.
pub(crate) fn check(kind: Kind, input: &ItemFn) -> syn::Result<()> {
    let mut errors = None;
    if input.sig.asyncness.is_none() {
        let msg = format!(
            "the `async` keyword is missing from the function declaration: {} applies to an `async fn`",
            kind.attribute()
        );
        combine(&mut errors, syn::Error::new_spanned(input.sig.fn_token, msg));
    }
    let takes_none = match kind {
        Kind::Main => input.sig.ident == "main",
        Kind::Test => true,
    };
    if takes_none && !input.sig.inputs.is_empty() {
        let msg = match kind {
            Kind::Main => "the `main` function cannot take arguments",
            Kind::Test => "test functions cannot take arguments",
        };
        combine(&mut errors, syn::Error::new_spanned(&input.sig.inputs, msg));
    }
    let second_test = input.attrs.iter().find(|a| is_test_attribute(a));
    if let (Kind::Test, Some(attr)) = (kind, second_test) {
        let msg = "a second test attribute: #[stop_machine::test] already makes this a #[test]; remove one";
        combine(&mut errors, syn::Error::new_spanned(attr, msg));
    }
    errors.map_or(Ok(()), Err)
}

/// `#[test]`, `#[core::prelude::v1::test]`, `#[tokio::test]`,
/// `#[stop_machine::test]` and their like: a path attribute ending in `test`.
fn is_test_attribute(attr: &Attribute) -> bool {
    match &attr.meta {
        syn::Meta::Path(path) | syn::Meta::List(syn::MetaList { path, .. }) => {
            path.segments.last().is_some_and(|s| s.ident == "test")
        }
        syn::Meta::NameValue(_) => false,
    }
}

/// The sync function: the `async fn`'s attributes, visibility and
/// signature without `async`, and a body that builds the runtime and blocks
/// on the original body as an `async move` block.
fn function(kind: Kind, args: &Args, mut input: ItemFn) -> TokenStream {
    input.sig.asyncness = None;
    let krate = match &args.krate {
        Some(path) => path.to_token_stream(),
        None => quote!(::stop_machine),
    };
    let builder = builder(kind, args, &krate);
    let failed = format!("{}: failed to build the runtime", kind.attribute());

    // Locals of the expansion, invisible to the body (mixed-site hygiene).
    let body = Ident::new("body", Span::mixed_site());
    let rt = Ident::new("rt", Span::mixed_site());
    let ret = Ident::new("ret", Span::mixed_site());

    // The body as a block whose value has the declared return type, so that
    // rustc reports a mismatch at the body's tail, not in the expansion, and
    // `?` knows its error type. The value leaves through a `return` whose
    // own `allow` keeps it quiet when the body diverges (the return is then
    // unreachable). The `match` keeps the block from being a `let`'s direct
    // initializer, where clippy's `diverging_sub_expression` would flag a
    // body that is one diverging call (`panic!()`). The body's own code
    // keeps every lint. `!` and `impl Trait` cannot annotate a `let`: those
    // go unannotated, checked at `block_on`'s return instead.
    let block = &input.block;
    let output = match &input.sig.output {
        ReturnType::Default => Some(quote! { () }),
        ReturnType::Type(_, ty) => annotatable(ty).then(|| ty.to_token_stream()),
    };
    let future = match output {
        Some(output) => quote! {
            async move {
                let #ret: #output = match () {
                    () => #block,
                };
                #[allow(unreachable_code, clippy::needless_return)]
                return #ret;
            }
        },
        None => quote! { async move #block },
    };

    // Inner attributes (`#![allow(..)]` in the body) cannot stay inside a
    // block that is no longer the function's: lift them onto the function.
    let attrs = input.attrs.iter().cloned().map(|mut attr| {
        attr.style = AttrStyle::Outer;
        attr
    });
    let test = match kind {
        Kind::Test => quote! { #[::core::prelude::v1::test] },
        Kind::Main => quote! {},
    };
    let vis = &input.vis;
    let sig = &input.sig;
    quote! {
        #(#attrs)*
        #test
        #vis #sig {
            let #body = #future;
            let #rt = #builder.build().expect(#failed);
            #rt.block_on(#body)
        }
    }
}

/// `Builder::new()` and a call per argument given (or defaulted for tests).
fn builder(kind: Kind, args: &Args, krate: &TokenStream) -> TokenStream {
    let mut calls = TokenStream::new();
    let duration = |ms: u64| quote! { ::std::time::Duration::from_millis(#ms) };
    let workers = match (kind, args.workers) {
        (_, Some(n)) => Some(n),
        // Tests do not depend on the machine: two workers, unless the test
        // asks for one per core.
        (Kind::Test, None) if args.per_core != Some(true) => Some(2),
        _ => None,
    };
    if let Some(n) = workers {
        calls.extend(quote! { .workers(#n) });
    }
    let pin = match kind {
        Kind::Test => Some(args.pin.unwrap_or(false)),
        Kind::Main => args.pin,
    };
    if let Some(pin) = pin {
        calls.extend(quote! { .pin(#pin) });
    }
    if let Some(name) = &args.thread_name {
        calls.extend(quote! { .thread_name(#name) });
    }
    if let Some(n) = args.event_interval {
        calls.extend(quote! { .event_interval(#n) });
    }
    if args.per_core == Some(true) {
        calls.extend(quote! { .per_core() });
    }
    if let Some(ms) = args.stop_timeout_ms {
        let d = duration(ms);
        calls.extend(quote! { .stop_timeout(#d) });
    }
    match args.slow_stop_warning_ms {
        Some(0) => calls.extend(quote! { .slow_stop_warning(::core::option::Option::None) }),
        Some(ms) => {
            let d = duration(ms);
            calls.extend(quote! { .slow_stop_warning(::core::option::Option::Some(#d)) });
        }
        None => {}
    }
    if let Some(n) = args.stop_a_lot {
        calls.extend(quote! { .stop_a_lot(#n) });
    }
    if let Some(on) = args.boost_stragglers {
        calls.extend(quote! { .boost_stragglers(#on) });
    }
    quote! { #krate::Builder::new() #calls }
}

/// Whether `ty` can annotate a `let`: not `!`, no `impl Trait` anywhere.
fn annotatable(ty: &Type) -> bool {
    fn has(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|t| match t {
            TokenTree::Ident(i) => i == "impl",
            TokenTree::Group(g) => has(g.stream()),
            _ => false,
        })
    }
    !matches!(ty, Type::Never(_)) && !has(ty.to_token_stream())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(src: &str) -> ItemFn {
        syn::parse_str(src).expect("test input is a fn")
    }

    fn expanded(kind: Kind, args: &str, src: &str) -> String {
        expand(kind, args.parse().unwrap(), src.parse().unwrap()).to_string()
    }

    fn check_err(kind: Kind, src: &str) -> Vec<String> {
        match check(kind, &item(src)) {
            Ok(()) => panic!("expected an error for {src}"),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_main_becomes_sync_and_blocks_on_its_body() {
        let out = expanded(Kind::Main, "", "async fn main() { println!(\"hi\"); }");
        assert!(out.starts_with("fn main () {"), "{out}");
        assert!(
            out.contains(
                "let body = async move { let ret : () = match () { () => { println ! (\"hi\") ; } , } ; \
                 # [allow (unreachable_code , clippy :: needless_return)] return ret ; } ;"
            ),
            "{out}"
        );
        assert!(
            out.contains("let rt = :: stop_machine :: Builder :: new () . build () . expect"),
            "{out}"
        );
        assert!(out.contains("rt . block_on (body)"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn every_argument_becomes_a_builder_call() {
        let out = expanded(
            Kind::Main,
            "workers = 3, pin = false, thread_name = \"db\", event_interval = 31, per_core = true, \
             stop_timeout_ms = 250, slow_stop_warning_ms = 20, stop_a_lot = 50, boost_stragglers = false, \
             crate = sm",
            "async fn main() {}",
        );
        let calls = "sm :: Builder :: new () . workers (3usize) . pin (false) . thread_name (\"db\") \
             . event_interval (31u32) . per_core () \
             . stop_timeout (:: std :: time :: Duration :: from_millis (250u64)) \
             . slow_stop_warning (:: core :: option :: Option :: Some (:: std :: time :: Duration :: from_millis (20u64))) \
             . stop_a_lot (50u32) . boost_stragglers (false) . build ()";
        assert!(out.contains(calls), "{out}");
    }

    #[test]
    fn zero_turns_the_slow_stop_warning_off() {
        let out = expanded(Kind::Main, "slow_stop_warning_ms = 0", "async fn main() {}");
        assert!(
            out.contains(". slow_stop_warning (:: core :: option :: Option :: None)"),
            "{out}"
        );
        let out = expanded(Kind::Main, "per_core = false", "async fn main() {}");
        assert!(out.contains("Builder :: new () . build ()"), "{out}");
    }

    #[test]
    fn tests_default_to_two_unpinned_workers() {
        let out = expanded(Kind::Test, "", "async fn t() {}");
        assert!(
            out.starts_with("# [:: core :: prelude :: v1 :: test] fn t () {"),
            "{out}"
        );
        assert!(
            out.contains("Builder :: new () . workers (2usize) . pin (false) . build ()"),
            "{out}"
        );
        let out = expanded(Kind::Test, "workers = 5, pin = true", "async fn t() {}");
        assert!(
            out.contains("Builder :: new () . workers (5usize) . pin (true) . build ()"),
            "{out}"
        );
        // One per core means no default worker count.
        let out = expanded(Kind::Test, "per_core = true", "async fn t() {}");
        assert!(
            out.contains("Builder :: new () . pin (false) . per_core () . build ()"),
            "{out}"
        );
    }

    #[test]
    fn the_return_type_annotates_the_body() {
        let out = expanded(Kind::Main, "", "async fn main() -> Result<(), E> { Ok(()) }");
        assert!(out.starts_with("fn main () -> Result < () , E > {"), "{out}");
        assert!(
            out.contains("let ret : Result < () , E > = match () { () => { Ok (()) } , } ;"),
            "{out}"
        );
        let out = expanded(Kind::Main, "", "async fn main() -> ! { loop {} }");
        assert!(out.contains("let body = async move { loop { } } ;"), "{out}");
        let out = expanded(
            Kind::Main,
            "",
            "async fn main() -> Box<impl Sized> { Box::new(1) }",
        );
        assert!(
            out.contains("let body = async move { Box :: new (1) } ;"),
            "{out}"
        );
    }

    #[test]
    fn attributes_are_kept_and_inner_ones_lifted() {
        let out = expanded(
            Kind::Test,
            "",
            "#[should_panic] pub(crate) async fn t() { #![allow(unused)] let x = 1; }",
        );
        assert!(
            out.starts_with(
                "# [should_panic] # [allow (unused)] # [:: core :: prelude :: v1 :: test] pub (crate) fn t () {"
            ),
            "{out}"
        );
        assert!(
            out.contains("let ret : () = match () { () => { let x = 1 ; } , } ;"),
            "{out}"
        );
    }

    #[test]
    fn a_fn_must_be_async() {
        let errors = check_err(Kind::Main, "fn main() {}");
        assert_eq!(
            errors,
            [
                "the `async` keyword is missing from the function declaration: #[stop_machine::main] applies to an `async fn`"
            ]
        );
        let errors = check_err(Kind::Test, "fn t() {}");
        assert!(
            errors[0].ends_with("#[stop_machine::test] applies to an `async fn`"),
            "{errors:?}"
        );
    }

    #[test]
    fn main_and_tests_take_no_arguments() {
        assert_eq!(
            check_err(Kind::Main, "async fn main(n: usize) {}"),
            ["the `main` function cannot take arguments"]
        );
        assert_eq!(
            check_err(Kind::Test, "async fn t(n: usize) {}"),
            ["test functions cannot take arguments"]
        );
        // Another entry point may: its arguments move into the body.
        assert!(check(Kind::Main, &item("async fn serve(n: usize) {}")).is_ok());
        let out = expanded(Kind::Main, "", "async fn serve(n: usize) -> usize { n }");
        assert!(out.starts_with("fn serve (n : usize) -> usize {"), "{out}");
    }

    #[test]
    fn a_second_test_attribute() {
        for attr in ["#[test]", "#[tokio::test]", "#[stop_machine::test(workers = 1)]"] {
            let errors = check_err(Kind::Test, &format!("{attr} async fn t() {{}}"));
            assert!(
                errors[0].starts_with("a second test attribute"),
                "{attr}: {errors:?}"
            );
        }
        assert!(check(Kind::Test, &item("#[cfg(test)] #[ignore] async fn t() {}")).is_ok());
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let errors = check_err(Kind::Test, "#[test] fn t(x: u8) {}");
        assert_eq!(errors.len(), 3, "{errors:?}");
        let out = expanded(Kind::Main, "workers = 0", "fn main() {}");
        assert_eq!(out.matches("compile_error").count(), 2, "{out}");
    }

    #[test]
    fn errors_still_expand_the_function() {
        // With default arguments, so that rustc adds no error of its own.
        let out = expanded(Kind::Main, "wrkers = 2", "async fn main() {}");
        assert!(out.starts_with("fn main () {"), "{out}");
        assert!(out.contains("Builder :: new () . build ()"), "{out}");
        assert!(
            out.contains("compile_error ! { \"#[stop_machine::main] has no argument `wrkers`"),
            "{out}"
        );
    }

    #[test]
    fn not_a_function() {
        let out = expanded(Kind::Main, "", "struct S;");
        assert!(out.starts_with("struct S ;"), "{out}");
        assert!(
            out.contains("#[stop_machine::main] applies to an `async fn`: expected `fn`"),
            "{out}"
        );
    }
}
