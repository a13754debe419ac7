//! `#[ktest]`: registers a kernel self-test function, as Asterinas's
//! `#[ktest]` does, so that no suite keeps a hand-written table of its tests.
//!
//! ```
//! use kernel::ktest::{ktest, Env, TestResult};
//!
//! /// Passes.
//! #[ktest]
//! fn translation_is_on(env: &Env<'_>) -> TestResult {
//!     let _ = env.online_cpus;
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! The function is emitted unchanged (its symbol, and so backtraces, keep its
//! path), followed by one `kernel::ktest::Registration` static holding:
//!
//! - the test's name: the function's name, so KTAP prints `suite.function`;
//! - its suite: the last segment of the function's `module_path!()`: one module
//!   (one file) per suite, the file `selftests/mmu.rs` holds suite `mmu`;
//! - `file!()` and `line!()` of the attribute, which order a suite's tests as
//!   they stand in the source;
//! - the function pointer.
//!
//! On the kernel's target (`target_os = "none"`) the static goes into the
//! `.ktest` link section, which `linker.ld` keeps and brackets with
//! `__ktest_start`/`__ktest_end`; `kernel::ktest::registered` reads it there.
//! On the host the static is an ordinary one (the host's tests hand the runner
//! their records as a slice). `#[used]` keeps it although nothing names it.
//!
//! A wrong use is a compile error that says what is expected:
//!
//! ```compile_fail
//! use kernel::ktest::ktest;
//! #[ktest]
//! struct NotAFunction;
//! # fn main() {}
//! ```
//!
//! ```compile_fail
//! use kernel::ktest::{ktest, Env, TestResult};
//! #[ktest]
//! fn two_arguments(_: &Env<'_>, _: u32) -> TestResult {
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! ```compile_fail
//! use kernel::ktest::{ktest, TestResult};
//! #[ktest]
//! fn not_an_env(_: u32) -> TestResult {
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! ```compile_fail
//! use kernel::ktest::{ktest, Env};
//! #[ktest]
//! fn returns_nothing(_: &Env<'_>) {}
//! # fn main() {}
//! ```
//!
//! ```compile_fail
//! use kernel::ktest::{ktest, Env, TestResult};
//! #[ktest(suite = "elsewhere")]
//! fn with_arguments(_: &Env<'_>) -> TestResult {
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! Written against the compiler's `proc_macro` API alone (no syn, no quote):
//! the signature checks are on tokens, which is all a test function needs.

use proc_macro::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};

const USAGE: &str = "#[ktest] goes on a self-test function `fn name(env: &Env<'_>) -> TestResult { ... }`";

/// The registration emitted after the function: `KTEST_NAME` and `KTEST_RUN`
/// are replaced by the test's name (a string) and the function's identifier.
const REGISTRATION: &str = r#"
const _: () = {
    #[used]
    // A link section is unsafe code to the compiler (it could name one the
    // linker script gives another meaning); `.ktest` holds only these
    // records. Lints are not reported in a proc macro's expansion anyway;
    // the allow says so where a suite denies unsafe code.
    #[allow(unsafe_code)]
    #[cfg_attr(target_os = "none", link_section = ".ktest")]
    static KTEST_REGISTRATION: ::kernel::ktest::Registration = ::kernel::ktest::Registration {
        suite: ::kernel::ktest::suite_of(::core::module_path!()),
        test: ::kernel::ktest::Test { name: KTEST_NAME, run: KTEST_RUN },
        file: ::core::file!(),
        line: ::core::line!(),
    };
};
"#;

/// Registers the function it is put on as a self-test; see the crate docs.
#[proc_macro_attribute]
pub fn ktest(args: TokenStream, item: TokenStream) -> TokenStream {
    if let Some(arg) = args.into_iter().next() {
        return with_error(
            item,
            arg.span(),
            "#[ktest] takes no arguments: a test's suite is the last segment of its module's path",
        );
    }
    let tokens: Vec<TokenTree> = item.clone().into_iter().collect();
    match test_function_name(&tokens) {
        Ok(name) => {
            let mut output = item;
            output.extend(registration(&name));
            output
        }
        Err((span, message)) => with_error(item, span, &message),
    }
}

type Error = (Span, String);

fn error(span: Span, why: &str) -> Error {
    (span, format!("{USAGE}: {why}"))
}

/// The name of the test function `tokens` declare, or where and why they do
/// not declare one.
fn test_function_name(tokens: &[TokenTree]) -> Result<Ident, Error> {
    let span_at = |i: usize| tokens.get(i).or(tokens.last()).map_or_else(Span::call_site, TokenTree::span);
    let mut i = 0;
    // Outer attributes, doc comments among them: `#` `[...]`.
    while punct_is(tokens.get(i), '#') && group_is(tokens.get(i + 1), Delimiter::Bracket) {
        i += 2;
    }
    // Visibility: `pub`, `pub(crate)`, `pub(super)`.
    if ident_is(tokens.get(i), "pub") {
        i += 1;
        if group_is(tokens.get(i), Delimiter::Parenthesis) {
            i += 1;
        }
    }
    match tokens.get(i) {
        Some(TokenTree::Ident(word)) if word.to_string() == "fn" => i += 1,
        Some(TokenTree::Ident(word))
            if matches!(word.to_string().as_str(), "const" | "async" | "unsafe" | "extern" | "default") =>
        {
            return Err(error(word.span(), &format!("a plain `fn`, not `{word} fn`")));
        }
        Some(TokenTree::Ident(word)) => {
            return Err(error(word.span(), &format!("a function, not a `{word}` item")));
        }
        _ => return Err(error(span_at(i), "a function, not this item")),
    }
    let name = match tokens.get(i) {
        Some(TokenTree::Ident(name)) => name.clone(),
        _ => return Err(error(span_at(i), "the function has no name")),
    };
    i += 1;
    if punct_is(tokens.get(i), '<') {
        return Err(error(span_at(i), "no generic parameters"));
    }
    let parameters = match tokens.get(i) {
        Some(TokenTree::Group(group)) if group.delimiter() == Delimiter::Parenthesis => group.clone(),
        _ => return Err(error(span_at(i), "the parameter list is missing")),
    };
    i += 1;
    let parameters: Vec<Vec<TokenTree>> = split_top_level(parameters.stream(), ',');
    if parameters.len() != 1 {
        return Err(error(parameters_span(&parameters, &name), &format!("one argument, not {}", parameters.len())));
    }
    let parameter = &parameters[0];
    match split_top_level(parameter.iter().cloned().collect(), ':').as_slice() {
        [_pattern, ty] if is_reference_to(ty, "Env") => {}
        [_pattern, ty] => {
            let span = ty.first().map_or_else(|| name.span(), TokenTree::span);
            return Err(error(span, "the argument is a `&Env<'_>`"));
        }
        _ => return Err(error(parameter[0].span(), "the argument is `env: &Env<'_>`")),
    }
    if !(punct_is(tokens.get(i), '-') && punct_is(tokens.get(i + 1), '>')) {
        return Err(error(span_at(i), "it returns `TestResult`"));
    }
    let body = tokens.len() - 1;
    if !group_is(tokens.get(body), Delimiter::Brace) || body <= i + 2 {
        return Err(error(span_at(body), "the function has a body"));
    }
    let returned: Vec<TokenTree> = tokens[i + 2..body].to_vec();
    if last_path_segment(&returned).as_deref() != Some("TestResult") {
        return Err(error(returned[0].span(), "it returns `TestResult`"));
    }
    Ok(name)
}

fn punct_is(token: Option<&TokenTree>, c: char) -> bool {
    matches!(token, Some(TokenTree::Punct(p)) if p.as_char() == c)
}

fn group_is(token: Option<&TokenTree>, delimiter: Delimiter) -> bool {
    matches!(token, Some(TokenTree::Group(g)) if g.delimiter() == delimiter)
}

fn ident_is(token: Option<&TokenTree>, word: &str) -> bool {
    matches!(token, Some(TokenTree::Ident(i)) if i.to_string() == word)
}

/// `stream` cut at each `separator` outside `<...>` (a `::` is no `:`
/// separator, a `->` closes no `<`); empty pieces (a trailing comma) dropped.
fn split_top_level(stream: TokenStream, separator: char) -> Vec<Vec<TokenTree>> {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    let mut pieces = vec![Vec::new()];
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        if let TokenTree::Punct(p) = token {
            let joint_with_next = p.spacing() == Spacing::Joint;
            match p.as_char() {
                ':' if joint_with_next && punct_is(tokens.get(i + 1), ':') => {
                    let piece = pieces.last_mut().expect("never empty");
                    piece.extend_from_slice(&tokens[i..i + 2]);
                    i += 2;
                    continue;
                }
                '-' if joint_with_next && punct_is(tokens.get(i + 1), '>') => {
                    let piece = pieces.last_mut().expect("never empty");
                    piece.extend_from_slice(&tokens[i..i + 2]);
                    i += 2;
                    continue;
                }
                '<' => depth += 1,
                '>' => depth = depth.saturating_sub(1),
                c if c == separator && depth == 0 => {
                    pieces.push(Vec::new());
                    i += 1;
                    continue;
                }
                _ => {}
            }
        }
        pieces.last_mut().expect("never empty").push(token.clone());
        i += 1;
    }
    pieces.retain(|piece| !piece.is_empty());
    pieces
}

fn parameters_span(parameters: &[Vec<TokenTree>], name: &Ident) -> Span {
    parameters.get(1).and_then(|p| p.first()).map_or_else(|| name.span(), TokenTree::span)
}

/// The last identifier of the path in `ty` before its generic arguments:
/// `kernel::ktest::Env<'_>` -> `Env`; lifetimes (`'a`) are skipped.
fn last_path_segment(ty: &[TokenTree]) -> Option<String> {
    let mut last = None;
    let mut after_quote = false;
    for token in ty {
        match token {
            TokenTree::Punct(p) if p.as_char() == '<' => break,
            TokenTree::Punct(p) => after_quote = p.as_char() == '\'',
            TokenTree::Ident(ident) if !after_quote => last = Some(ident.to_string()),
            _ => after_quote = false,
        }
    }
    last
}

/// Whether `ty` is `&` (with a lifetime, perhaps) a path ending in `name`.
fn is_reference_to(ty: &[TokenTree], name: &str) -> bool {
    punct_is(ty.first(), '&') && last_path_segment(&ty[1..]).as_deref() == Some(name)
}

/// The registration static for the test function `name`.
fn registration(name: &Ident) -> TokenStream {
    let template: TokenStream = REGISTRATION.parse().expect("the registration template parses");
    let spelled = name.to_string();
    let test_name = spelled.strip_prefix("r#").unwrap_or(&spelled).to_string();
    substitute(template, &|word| match word {
        "KTEST_NAME" => {
            let mut literal = Literal::string(&test_name);
            literal.set_span(name.span());
            Some(TokenTree::Literal(literal))
        }
        // The function's own identifier: a signature the compiler rejects
        // (the coercion to a `fn(&Env<'_>) -> TestResult`) points at it.
        "KTEST_RUN" => Some(TokenTree::Ident(name.clone())),
        _ => None,
    })
}

/// `stream` with each identifier `replace` has a token for replaced by it.
fn substitute(stream: TokenStream, replace: &dyn Fn(&str) -> Option<TokenTree>) -> TokenStream {
    stream
        .into_iter()
        .map(|token| match token {
            TokenTree::Ident(ident) => replace(&ident.to_string()).unwrap_or(TokenTree::Ident(ident)),
            TokenTree::Group(group) => {
                let mut replaced = Group::new(group.delimiter(), substitute(group.stream(), replace));
                replaced.set_span(group.span());
                TokenTree::Group(replaced)
            }
            other => other,
        })
        .collect()
}

/// `item` unchanged (no error about it follows from this one) and
/// `::core::compile_error! { message }` at `span`.
fn with_error(item: TokenStream, span: Span, message: &str) -> TokenStream {
    let mut message = Literal::string(message);
    message.set_span(span);
    let mut tokens = vec![
        TokenTree::Punct(Punct::new(':', Spacing::Joint)),
        TokenTree::Punct(Punct::new(':', Spacing::Alone)),
        TokenTree::Ident(Ident::new("core", span)),
        TokenTree::Punct(Punct::new(':', Spacing::Joint)),
        TokenTree::Punct(Punct::new(':', Spacing::Alone)),
        TokenTree::Ident(Ident::new("compile_error", span)),
        TokenTree::Punct(Punct::new('!', Spacing::Alone)),
        TokenTree::Group(Group::new(Delimiter::Brace, TokenStream::from(TokenTree::Literal(message)))),
    ];
    for token in &mut tokens {
        token.set_span(span);
    }
    let mut output = item;
    output.extend(tokens);
    output
}
