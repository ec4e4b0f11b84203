//! Quoting filters for the emitted shell scripts and systemd units.
//!
//! In: arbitrary strings from the manifest (names, paths, descriptions, values). Out: text that,
//! pasted into one particular spot of a POSIX shell script, a systemd unit file or a systemd
//! `EnvironmentFile=`, reads back as exactly the input: nothing is expanded, split, joined
//! with the next line or treated as a comment. Each function names the spot it is for; a
//! string the spot cannot hold (a NUL byte, a control character in a path, ...) is a
//! [`QuoteError`], never a silently altered string. [`register`] exposes the functions to the
//! minijinja templates as filters.
//!
//! What systemd 252 accepts was checked by hand with `systemd-analyze verify --user` and with
//! `systemd --test --user` (run as an unprivileged user, it prints the parsed unit):
//!
//! * `ExecStart=` / `ExecStop=` arguments are unquoted with C escapes (`"a\"b"`, `"\n"`,
//!   `"\x01"`), `""` is an empty argument, a quoted `";"` is not a command separator, `%%`
//!   is `%`, and `$$` is kept as `$$` in the parsed command line (systemd turns it into `$`
//!   when it spawns the command; that step is read from the sources, not observed). The
//!   executable (first word) is not `$`-expanded: `"/x/a$$b"` fails verify with "Command
//!   /x/a$$b is not executable"; and it may not hold `'`, `"`, `\` or control characters at
//!   all ("Executable name contains special characters"). Hence [`systemd_exec_path`].
//! * `WorkingDirectory=` and `EnvironmentFile=` take the raw rest of the line: a quoted value
//!   is refused (`WorkingDirectory= path is not absolute: "/tmp/d d"`, and `EnvironmentFile=`
//!   ignores it the same way), while an unquoted value with spaces, quotes and backslashes
//!   is taken verbatim. Only specifiers are expanded (`%%` is `%`), surrounding whitespace is
//!   stripped and an odd number of trailing backslashes joins the next line. Hence
//!   [`systemd_path`] is unquoted.
//! * `ReadWritePaths=` splits on whitespace; `"/tmp/d d"` is one path (unquoted it is two,
//!   and `d` is ignored as not absolute). Inside the quotes a backslash escapes the next
//!   character, but there are no C escapes. Hence [`systemd_path_list_item`] is quoted.
//! * All three settings refuse a path with a `..` component ("path is not normalized") and
//!   none expands `$`.
//! * `EnvironmentFile=` paths are also glob patterns when the unit starts (systemd's
//!   `exec_context_load_environment` calls `glob(3)` on them), so [`systemd_env_file_path`]
//!   escapes `*`, `?`, `[` and `\` for `glob(3)` on top of [`systemd_path`].
//! * `Description=` is specifier-expanded but not unescaped: what is written (after `%%`) is
//!   what is shown.
//! * The `EnvironmentFile=` itself is read when the unit starts, by the parser in systemd's
//!   `env-file.c`: inside double quotes `\` escapes only `"`, `\`, `` ` `` and `$`, as in sh.
//!   That parser was exercised through `30-systemd-environment-d-generator`, which shares it.

use std::fmt::Write as _;

use minijinja::value::ValueKind;
use minijinja::{Environment, ErrorKind, Value};

/// Why a string cannot be embedded safely.
///
/// Each variant holds the offending string as it is shown in the message: control characters
/// appear as C escapes (`\n`, `\x00`) so the message stays on one line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum QuoteError {
    /// The string holds a NUL byte; C strings (argv, environment, file names) end there.
    #[error("`{0}` contains a NUL byte, which no shell or unit file can hold")]
    Nul(String),
    /// A path holds a control character; systemd cannot write one in a path setting.
    #[error("`{0}` contains a control character, which systemd cannot hold in a path setting")]
    ControlInPath(String),
    /// A path does not start with `/`; systemd wants absolute paths (and reads a leading
    /// `-`, `+` or `~` as a flag).
    #[error("`{0}` is not an absolute path (it must start with `/`)")]
    NotAbsolute(String),
    /// A path has a `..` component, which systemd refuses as "not normalized".
    #[error("`{0}` contains a `..` component, which systemd refuses in path settings")]
    DotDot(String),
    /// An unquoted path ends in whitespace, which systemd strips off the setting.
    #[error("`{0}` ends with whitespace, which systemd strips from an unquoted path setting")]
    TrailingWhitespace(String),
    /// An unquoted path ends in a backslash, which systemd reads as a line continuation.
    #[error(
        "`{0}` ends with a backslash, which systemd reads as a line continuation in an unquoted path setting"
    )]
    TrailingBackslash(String),
    /// An executable path holds a quote or backslash, which systemd refuses there even when
    /// escaped.
    #[error(
        "`{0}` contains a quote or backslash, which systemd refuses in the path of an executable"
    )]
    UnsafeExecutable(String),
}

/// POSIX sh quoting: the result, pasted as one word into a sh/bash script, yields exactly `s`.
///
/// A non-empty string made only of `[A-Za-z0-9_@%+=:,./-]` is returned as is; anything else
/// (including the empty string) is wrapped in single quotes, with each `'` written as `'\''`.
/// Inside single quotes sh and bash expand nothing (`$`, `` ` ``, `\`, `!`, `*`, `~` and
/// newlines stay literal). The word is meant for an argument or the value of an assignment:
/// as the first word of a command, an unquoted `NAME=value` would be read as an assignment.
pub(crate) fn shell_quote(s: &str) -> Result<String, QuoteError> {
    reject_nul(s)?;
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b);
    if !s.is_empty() && s.bytes().all(plain) {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    Ok(out)
}

/// One argument of a systemd `ExecStart=`/`ExecStop=` command line, so that systemd passes
/// exactly `s` as that argv entry.
///
/// The result is double-quoted, with `\` and `"` backslash-escaped, `%` written `%%`
/// (specifiers), `$` written `$$` (environment expansion), and ASCII control characters as C
/// escapes (`\n`, `\t`, `\r`, otherwise `\xNN`). The quotes also keep a lone `;` from
/// separating commands and `""` from vanishing. Not for the executable, the first word:
/// systemd reads its leading `-@:+!` as flags even when quoted and does not expand `$` in it;
/// use [`systemd_exec_path`] there.
pub(crate) fn systemd_exec_arg(s: &str) -> Result<String, QuoteError> {
    reject_nul(s)?;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c if c.is_ascii_control() => push_c_escape(&mut out, c),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// The executable, the first word of a systemd `ExecStart=`/`ExecStop=` command line.
///
/// Double-quoted (for spaces) with `%` written `%%`. Unlike [`systemd_exec_arg`], `$` is
/// left alone: systemd does not expand environment variables in the executable path, so
/// `$$` there would stay `$$` and name another file. systemd refuses an executable path
/// holding `'`, `"`, `\` or a control character, escaped or not ("Executable name contains
/// special characters"), so those are errors, as are a path that is not absolute (which also
/// keeps a leading `-@:+!` from being read as a flag) and a `..` component.
pub(crate) fn systemd_exec_path(s: &str) -> Result<String, QuoteError> {
    check_path(s)?;
    if s.contains(['\'', '"', '\\']) {
        return Err(QuoteError::UnsafeExecutable(shown(s)));
    }
    Ok(double_quote_path(s))
}

/// An absolute path in a single-path setting (`WorkingDirectory=`, `RootDirectory=`, ...):
/// unquoted, because systemd 252 takes the raw rest of the line there and refuses quotes.
///
/// Spaces, quotes, `$` and backslashes need no escaping there; `%` is written `%%`. Errors
/// for what that form cannot hold: a NUL byte or other control character, a path not starting
/// with `/`, a `..` component, trailing whitespace (stripped by systemd) and a trailing
/// backslash (a line continuation). For `EnvironmentFile=` use [`systemd_env_file_path`].
pub(crate) fn systemd_path(s: &str) -> Result<String, QuoteError> {
    check_path(s)?;
    check_unquoted_end(s)?;
    Ok(s.replace('%', "%%"))
}

/// An absolute path for `EnvironmentFile=`: like [`systemd_path`], and also escaped for
/// `glob(3)`, which systemd runs on the path when the unit starts.
///
/// `*`, `?`, `[` and `\` get a backslash in front, so the pattern matches only the file named
/// `s`. (A trailing backslash is thereby doubled and no longer continues the line.)
pub(crate) fn systemd_env_file_path(s: &str) -> Result<String, QuoteError> {
    check_path(s)?;
    if s.ends_with(char::is_whitespace) {
        return Err(QuoteError::TrailingWhitespace(shown(s)));
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%%"),
            '*' | '?' | '[' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// One absolute path of a whitespace-separated path list (`ReadWritePaths=`,
/// `ReadOnlyPaths=`, ...): double-quoted so spaces do not split it.
///
/// Inside the quotes `\` and `"` are backslash-escaped and `%` is written `%%`. systemd does
/// no C unescaping in these lists, so control characters are an error, as are a NUL byte, a
/// path not starting with `/` and a `..` component.
pub(crate) fn systemd_path_list_item(s: &str) -> Result<String, QuoteError> {
    check_path(s)?;
    Ok(double_quote_path(s))
}

/// Free text (`Description=`): one line that systemd shows as `s`, or as `s` in C escapes
/// where `s` cannot be shown as is.
///
/// `%` is written `%%`; every backslash is doubled (so the setting never ends in a line
/// continuation, and the escapes below stay unambiguous); newlines, tabs and other ASCII
/// control characters become their visible C escape text (`\n`, `\t`, `\xNN`), which systemd
/// shows verbatim. systemd strips leading and trailing whitespace from the value. Errors only
/// on a NUL byte.
pub(crate) fn systemd_text(s: &str) -> Result<String, QuoteError> {
    reject_nul(s)?;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%%"),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii_control() => push_c_escape(&mut out, c),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The value of a `KEY=VALUE` line in a systemd `EnvironmentFile=`, such that systemd reads
/// back exactly `s`.
///
/// The value is double-quoted with `\`, `"`, `$` and `` ` `` backslash-escaped; everything
/// else, newlines and control characters included, is written as is. This form means the
/// same to POSIX sh, so the same file can also be loaded with `set -a; . ./file` (given a
/// key that is a valid shell name). Errors only on a NUL byte.
///
/// Not for `environment.d/*.conf`: systemd parses those the same way but then expands `$`
/// references and drops an empty value.
pub(crate) fn env_file_value(s: &str) -> Result<String, QuoteError> {
    reject_nul(s)?;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

/// Registers the quoting functions as minijinja filters: `shell`, `systemd_arg`,
/// `systemd_exec_path`, `systemd_path`, `systemd_env_file_path`, `systemd_path_list_item`,
/// `systemd_text` and `env_value`.
///
/// Each filter takes a string (a number is stringified first) and returns it quoted as a
/// safe string, so HTML auto-escaping can never alter the quoting. Undefined, none and any
/// other kind of value fail the render with [`ErrorKind::InvalidOperation`], so a misspelt
/// variable cannot become an empty argument; a [`QuoteError`] fails it the same way.
pub(crate) fn register(env: &mut Environment<'_>) {
    env.add_filter("shell", |v: &Value| apply("shell", shell_quote, v));
    env.add_filter("systemd_arg", |v: &Value| {
        apply("systemd_arg", systemd_exec_arg, v)
    });
    env.add_filter("systemd_exec_path", |v: &Value| {
        apply("systemd_exec_path", systemd_exec_path, v)
    });
    env.add_filter("systemd_path", |v: &Value| {
        apply("systemd_path", systemd_path, v)
    });
    env.add_filter("systemd_env_file_path", |v: &Value| {
        apply("systemd_env_file_path", systemd_env_file_path, v)
    });
    env.add_filter("systemd_path_list_item", |v: &Value| {
        apply("systemd_path_list_item", systemd_path_list_item, v)
    });
    env.add_filter("systemd_text", |v: &Value| {
        apply("systemd_text", systemd_text, v)
    });
    env.add_filter("env_value", |v: &Value| {
        apply("env_value", env_file_value, v)
    });
}

/// Runs one quoting function on a template value, turning a wrong kind of value or a
/// [`QuoteError`] into a minijinja error that names the filter.
fn apply(
    filter: &str,
    quote: fn(&str) -> Result<String, QuoteError>,
    value: &Value,
) -> Result<Value, minijinja::Error> {
    let text = match value.kind() {
        ValueKind::String => value.as_str().map(str::to_owned),
        ValueKind::Number => Some(value.to_string()),
        _ => None,
    };
    let Some(text) = text else {
        let hint = match value.kind() {
            ValueKind::Undefined | ValueKind::None => " (a misspelt or missing variable?)",
            _ => "",
        };
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "filter `{filter}` needs a string, got {}{hint}",
                value.kind()
            ),
        ));
    };
    match quote(&text) {
        Ok(quoted) => Ok(Value::from_safe_string(quoted)),
        Err(err) => Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("filter `{filter}`: {err}"),
        )
        .with_source(err)),
    }
}

/// Fails with [`QuoteError::Nul`] if `s` holds a NUL byte.
fn reject_nul(s: &str) -> Result<(), QuoteError> {
    if s.contains('\0') {
        return Err(QuoteError::Nul(shown(s)));
    }
    Ok(())
}

/// The checks every systemd path form shares: no NUL or control character, absolute, no
/// `..` component.
fn check_path(s: &str) -> Result<(), QuoteError> {
    reject_nul(s)?;
    if s.chars().any(char::is_control) {
        return Err(QuoteError::ControlInPath(shown(s)));
    }
    if !s.starts_with('/') {
        return Err(QuoteError::NotAbsolute(shown(s)));
    }
    if s.split('/').any(|part| part == "..") {
        return Err(QuoteError::DotDot(shown(s)));
    }
    Ok(())
}

/// `s` in double quotes with `\` and `"` backslash-escaped and `%` written `%%`: the quoted
/// path form, for [`check_path`]ed paths.
fn double_quote_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The checks for a value written unquoted to the end of a unit file line: no trailing
/// whitespace (stripped) and no trailing backslash (line continuation).
fn check_unquoted_end(s: &str) -> Result<(), QuoteError> {
    if s.ends_with(char::is_whitespace) {
        return Err(QuoteError::TrailingWhitespace(shown(s)));
    }
    if s.ends_with('\\') {
        return Err(QuoteError::TrailingBackslash(shown(s)));
    }
    Ok(())
}

/// Appends the C escape for the ASCII control character `c` (`\n`, `\t`, `\r`, else
/// `\xNN`).
fn push_c_escape(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        // Writing to a `String` cannot fail.
        c => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
    }
}

/// `s` for an error message: control characters (NUL included) as C escapes, the rest as is.
fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_control() {
            push_c_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs;
    use std::path::Path;
    use std::process::{Command, Output};

    /// Strings that break naive quoting in one place or another.
    const NASTY: &[&str] = &[
        "$(touch x)",
        "`touch x`",
        "; touch x",
        "`id`",
        "a'b",
        "'",
        "''",
        "a\"b",
        "%h",
        "%%",
        "$HOME",
        "${HOME}",
        "$$",
        "a\\b",
        "\\",
        "trailing\\",
        "a b",
        "  lead and trail  ",
        "line1\nline2",
        "\n",
        "tab\there",
        "cr\rlf",
        "bell\x07del\x7f",
        "*",
        "?",
        "[a]",
        "~",
        "~root",
        "-x",
        "--help",
        "!",
        "#comment",
        ";",
        "&",
        "|",
        "<>",
        "a=b",
        "",
        "ünïcødé €",
        "日本語",
    ];

    /// Runs `shell -c script` in `dir` and returns its output.
    fn run_shell(shell: &str, script: &str, dir: &Path) -> Output {
        Command::new(shell)
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{shell}`: {e}"))
    }

    #[test]
    fn shell_quote_exact_outputs() {
        assert_eq!(shell_quote("abc").unwrap(), "abc");
        assert_eq!(
            shell_quote("/a/b-c_d.e:f,g+h=i@j%k").unwrap(),
            "/a/b-c_d.e:f,g+h=i@j%k"
        );
        assert_eq!(shell_quote("").unwrap(), "''");
        assert_eq!(shell_quote("a b").unwrap(), "'a b'");
        assert_eq!(shell_quote("a'b").unwrap(), "'a'\\''b'");
        assert_eq!(shell_quote("~").unwrap(), "'~'");
        assert_eq!(shell_quote("$x").unwrap(), "'$x'");
        assert_eq!(
            shell_quote("a\0b"),
            Err(QuoteError::Nul("a\\x00b".to_owned()))
        );
    }

    #[test]
    fn shell_quote_round_trips_through_sh_and_bash() {
        let dir = tempfile::tempdir().unwrap();
        for shell in ["sh", "bash"] {
            for s in NASTY {
                let script = format!("printf '%s' {}", shell_quote(s).unwrap());
                let out = run_shell(shell, &script, dir.path());
                assert!(
                    out.status.success() && out.stderr.is_empty(),
                    "{shell}: {script}: {out:?}"
                );
                assert_eq!(
                    String::from_utf8(out.stdout).unwrap(),
                    *s,
                    "{shell}: {script}"
                );
            }
            // All of them as separate words of one command: word boundaries hold and the
            // empty string is still an argument.
            let words: Vec<String> = NASTY.iter().map(|s| shell_quote(s).unwrap()).collect();
            let script = format!("printf '<%s>' {}", words.join(" "));
            let out = run_shell(shell, &script, dir.path());
            let expected: String = NASTY.iter().map(|s| format!("<{s}>")).collect();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), expected, "{shell}");
        }
        assert!(!dir.path().join("x").exists(), "a command substitution ran");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn systemd_exec_arg_exact_outputs() {
        let q = |s| systemd_exec_arg(s).unwrap();
        assert_eq!(q("plain"), "\"plain\"");
        assert_eq!(q(""), "\"\"");
        assert_eq!(q("a b"), "\"a b\"");
        assert_eq!(q("a\"b"), "\"a\\\"b\"");
        assert_eq!(q("a\\b"), "\"a\\\\b\"");
        assert_eq!(q("trailing\\"), "\"trailing\\\\\"");
        assert_eq!(q("%h"), "\"%%h\"");
        assert_eq!(q("$HOME ${X}"), "\"$$HOME $${X}\"");
        assert_eq!(q("a'b"), "\"a'b\"");
        assert_eq!(q(";"), "\";\"");
        assert_eq!(q("l1\nl2\tt\rr"), "\"l1\\nl2\\tt\\rr\"");
        assert_eq!(q("\x01\x1b\x7f"), "\"\\x01\\x1b\\x7f\"");
        assert_eq!(q("ü€"), "\"ü€\"");
        assert_eq!(
            systemd_exec_arg("\0"),
            Err(QuoteError::Nul("\\x00".to_owned()))
        );
    }

    #[test]
    fn systemd_exec_path_exact_outputs() {
        let q = |s| systemd_exec_path(s).unwrap();
        assert_eq!(q("/bin/true"), "\"/bin/true\"");
        assert_eq!(q("/opt/a b/$x ${y}/50%/ü"), "\"/opt/a b/$x ${y}/50%%/ü\"");
        for bad in ["/opt/it's", "/opt/\"q\"", "/opt/a\\b"] {
            assert_eq!(
                systemd_exec_path(bad),
                Err(QuoteError::UnsafeExecutable(bad.to_owned()))
            );
        }
        assert_eq!(
            systemd_exec_path("-/bin/true"),
            Err(QuoteError::NotAbsolute("-/bin/true".to_owned()))
        );
        assert_eq!(
            systemd_exec_path("/bin/a\nb"),
            Err(QuoteError::ControlInPath("/bin/a\\nb".to_owned()))
        );
    }

    #[test]
    fn systemd_path_exact_outputs() {
        assert_eq!(systemd_path("/srv/a b").unwrap(), "/srv/a b");
        assert_eq!(
            systemd_path("/srv/it's \"q\" $x \\b").unwrap(),
            "/srv/it's \"q\" $x \\b"
        );
        assert_eq!(systemd_path("/srv/50%").unwrap(), "/srv/50%%");
        assert_eq!(systemd_path("/srv/a*b").unwrap(), "/srv/a*b");
        assert_eq!(systemd_path("/srv/..x/x..").unwrap(), "/srv/..x/x..");
        let err = |s: &str| systemd_path(s).unwrap_err();
        assert_eq!(err("rel/a"), QuoteError::NotAbsolute("rel/a".to_owned()));
        assert_eq!(err("-/a"), QuoteError::NotAbsolute("-/a".to_owned()));
        assert_eq!(err(""), QuoteError::NotAbsolute(String::new()));
        assert_eq!(err("/a/../b"), QuoteError::DotDot("/a/../b".to_owned()));
        assert_eq!(err("/a/.."), QuoteError::DotDot("/a/..".to_owned()));
        assert_eq!(err("/a "), QuoteError::TrailingWhitespace("/a ".to_owned()));
        assert_eq!(
            err("/a\\"),
            QuoteError::TrailingBackslash("/a\\".to_owned())
        );
        assert_eq!(err("/a\nb"), QuoteError::ControlInPath("/a\\nb".to_owned()));
        assert_eq!(err("/a\tb"), QuoteError::ControlInPath("/a\\tb".to_owned()));
        assert_eq!(
            err("/a\u{85}b"),
            QuoteError::ControlInPath("/a\u{85}b".to_owned())
        );
        assert_eq!(err("/a\0b"), QuoteError::Nul("/a\\x00b".to_owned()));
    }

    #[test]
    fn systemd_env_file_path_exact_outputs() {
        assert_eq!(
            systemd_env_file_path("/srv/a b.env").unwrap(),
            "/srv/a b.env"
        );
        assert_eq!(
            systemd_env_file_path("/srv/*?[x]%\\").unwrap(),
            "/srv/\\*\\?\\[x]%%\\\\"
        );
        assert_eq!(
            systemd_env_file_path("/a "),
            Err(QuoteError::TrailingWhitespace("/a ".to_owned()))
        );
        assert_eq!(
            systemd_env_file_path("a"),
            Err(QuoteError::NotAbsolute("a".to_owned()))
        );
    }

    #[test]
    fn systemd_path_list_item_exact_outputs() {
        let q = |s| systemd_path_list_item(s).unwrap();
        assert_eq!(q("/srv/a"), "\"/srv/a\"");
        assert_eq!(q("/srv/a b "), "\"/srv/a b \"");
        assert_eq!(q("/srv/a\"b"), "\"/srv/a\\\"b\"");
        assert_eq!(q("/srv/a\\"), "\"/srv/a\\\\\"");
        assert_eq!(q("/srv/%h $x 'q'"), "\"/srv/%%h $x 'q'\"");
        assert_eq!(
            systemd_path_list_item("/a\nb"),
            Err(QuoteError::ControlInPath("/a\\nb".to_owned()))
        );
        assert_eq!(
            systemd_path_list_item("+/a"),
            Err(QuoteError::NotAbsolute("+/a".to_owned()))
        );
        assert_eq!(
            systemd_path_list_item("/a/../b"),
            Err(QuoteError::DotDot("/a/../b".to_owned()))
        );
    }

    #[test]
    fn systemd_text_exact_outputs() {
        assert_eq!(systemd_text("Record audio").unwrap(), "Record audio");
        assert_eq!(systemd_text("50% of %h").unwrap(), "50%% of %%h");
        assert_eq!(systemd_text("a\\b\\").unwrap(), "a\\\\b\\\\");
        assert_eq!(
            systemd_text("l1\nl2\tt\r\x01").unwrap(),
            "l1\\nl2\\tt\\r\\x01"
        );
        assert_eq!(
            systemd_text("$HOME 'q' \"d\" ü").unwrap(),
            "$HOME 'q' \"d\" ü"
        );
        assert_eq!(
            systemd_text("a\0"),
            Err(QuoteError::Nul("a\\x00".to_owned()))
        );
    }

    #[test]
    fn env_file_value_exact_outputs() {
        assert_eq!(env_file_value("plain").unwrap(), "\"plain\"");
        assert_eq!(env_file_value("").unwrap(), "\"\"");
        assert_eq!(
            env_file_value("$x `id` \"q\" \\ 'a' %h").unwrap(),
            "\"\\$x \\`id\\` \\\"q\\\" \\\\ 'a' %h\""
        );
        assert_eq!(env_file_value("l1\nl2").unwrap(), "\"l1\nl2\"");
        assert_eq!(
            env_file_value("\0"),
            Err(QuoteError::Nul("\\x00".to_owned()))
        );
    }

    #[test]
    fn env_file_value_round_trips_through_sh() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = String::new();
        for (i, s) in NASTY.iter().enumerate() {
            file.push_str(&format!("KEY_{i}={}\n", env_file_value(s).unwrap()));
        }
        fs::write(dir.path().join("env"), &file).unwrap();
        for (i, s) in NASTY.iter().enumerate() {
            let script = format!("set -a; . ./env; printf '%s' \"$KEY_{i}\"");
            let out = run_shell("sh", &script, dir.path());
            assert!(out.status.success(), "sh failed on {s:?}: {out:?}");
            assert!(out.stderr.is_empty(), "{s:?}: {out:?}");
            assert_eq!(String::from_utf8(out.stdout).unwrap(), *s);
        }
        assert!(!dir.path().join("x").exists(), "a command substitution ran");
    }

    /// Runs `systemd-analyze verify --user` on `unit` with `home` as `$HOME` and
    /// `$XDG_RUNTIME_DIR`, returning its stderr.
    fn systemd_verify(unit: &Path, home: &Path) -> String {
        let out = Command::new("systemd-analyze")
            .args(["verify", "--user"])
            .arg(unit)
            .env("HOME", home)
            .env("XDG_RUNTIME_DIR", home)
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .expect("`systemd-analyze` must be installed for this test");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    #[test]
    fn systemd_analyze_accepts_every_form() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let nasty_dir = root.join("d $(touch x) 'q' \"dq\" %h \\b ü *?[ trailing\\");
        let plain_dir = root.join("plain dir");
        fs::create_dir(&nasty_dir).unwrap();
        fs::create_dir(&plain_dir).unwrap();
        let env_file = nasty_dir.join("e $X %i `id` [x*?.env");
        fs::write(&env_file, "A=\"1\"\n").unwrap();
        // verify checks that the executable exists and is executable.
        let bin_dir = root.join("bin $(touch x) %h ü *?[");
        fs::create_dir(&bin_dir).unwrap();
        let exe = bin_dir.join("t $x ${y} %% -x ;");
        fs::copy("/bin/true", &exe).unwrap();
        let path = |p: &Path| p.to_str().unwrap().to_owned();
        let args: Vec<String> = NASTY.iter().map(|s| systemd_exec_arg(s).unwrap()).collect();
        let unit = format!(
            "[Unit]\n\
             Description={desc}\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             ExecStart={exe} {args}\n\
             ExecStop={exe} {args}\n\
             WorkingDirectory={wd}\n\
             EnvironmentFile={ef}\n\
             ReadWritePaths={rw1} {rw2}\n",
            desc = systemd_text("50% of $HOME `id` 'q' \"d\"\nline two \\").unwrap(),
            exe = systemd_exec_path(&path(&exe)).unwrap(),
            args = args.join(" "),
            // The nasty directory name ends in a backslash, which the unquoted form refuses.
            wd = systemd_path(&path(&plain_dir)).unwrap(),
            ef = systemd_env_file_path(&path(&env_file)).unwrap(),
            rw1 = systemd_path_list_item(&path(&nasty_dir)).unwrap(),
            rw2 = systemd_path_list_item(&path(&plain_dir)).unwrap(),
        );
        let unit_path = root.join("acoupi-quoting-test.service");
        fs::write(&unit_path, &unit).unwrap();
        assert_eq!(systemd_verify(&unit_path, root), "", "unit:\n{unit}");

        // A nasty single path that the unquoted form can hold.
        let wd_dir = root.join("w $(touch x) 'q' \"dq\" %h \\b ü *?[");
        fs::create_dir(&wd_dir).unwrap();
        let unit = format!(
            "[Service]\nType=oneshot\nExecStart=/bin/true\nWorkingDirectory={}\n",
            systemd_path(&path(&wd_dir)).unwrap()
        );
        fs::write(&unit_path, &unit).unwrap();
        assert_eq!(systemd_verify(&unit_path, root), "", "unit:\n{unit}");
        assert!(!root.join("x").exists());
    }

    #[test]
    fn systemd_analyze_refuses_the_wrong_forms() {
        // Why `systemd_path` is unquoted and `systemd_exec_path` exists, and proof that the
        // checks above can fail.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a b");
        fs::create_dir(&dir).unwrap();
        let quoted = systemd_path_list_item(dir.to_str().unwrap()).unwrap();
        let unit_path = tmp.path().join("acoupi-quoted.service");
        fs::write(
            &unit_path,
            format!("[Service]\nType=oneshot\nExecStart=/bin/true\nWorkingDirectory={quoted}\n"),
        )
        .unwrap();
        let stderr = systemd_verify(&unit_path, tmp.path());
        assert!(stderr.contains("is not absolute"), "{stderr}");

        // `$` in the executable is not expanded, so the `$$` of `systemd_exec_arg` stays.
        let exe = dir.join("t$x");
        fs::copy("/bin/true", &exe).unwrap();
        let exe = exe.to_str().unwrap();
        fs::write(
            &unit_path,
            format!(
                "[Service]\nType=oneshot\nExecStart={}\n",
                systemd_exec_arg(exe).unwrap()
            ),
        )
        .unwrap();
        let stderr = systemd_verify(&unit_path, tmp.path());
        assert!(stderr.contains("is not executable"), "{stderr}");
    }

    #[test]
    fn filters_render_in_a_template() {
        let mut env = Environment::new();
        register(&mut env);
        let source = "{{ s | shell }}|{{ s | systemd_arg }}|{{ p | systemd_exec_path }}|\
                      {{ p | systemd_path }}|\
                      {{ p | systemd_env_file_path }}|{{ p | systemd_path_list_item }}|\
                      {{ s | systemd_text }}|{{ s | env_value }}|{{ n | shell }}";
        // `.html` turns on auto-escaping, which must not touch the quoted output.
        env.add_template("t.html", source).unwrap();
        let ctx = minijinja::context! { s => "it's <$x>", p => "/a b/50%*", n => 42 };
        let out = env.get_template("t.html").unwrap().render(ctx).unwrap();
        assert_eq!(
            out,
            "'it'\\''s <$x>'|\"it's <$$x>\"|\"/a b/50%%*\"|/a b/50%%*|/a b/50%%\\*|\
             \"/a b/50%%*\"|it's <$x>|\"it's <\\$x>\"|42"
        );
    }

    #[test]
    fn filters_refuse_undefined_none_and_unquotable_values() {
        let mut env = Environment::new();
        register(&mut env);
        let names = [
            "shell",
            "systemd_arg",
            "systemd_exec_path",
            "systemd_path",
            "systemd_env_file_path",
            "systemd_path_list_item",
            "systemd_text",
            "env_value",
        ];
        for name in names {
            for (source, needle) in [
                (format!("{{{{ typo | {name} }}}}"), "got undefined"),
                (format!("{{{{ none | {name} }}}}"), "got none"),
                (format!("{{{{ [1] | {name} }}}}"), "got sequence"),
                (format!("{{{{ true | {name} }}}}"), "got bool"),
                (format!("{{{{ nul | {name} }}}}"), "NUL byte"),
            ] {
                let ctx = minijinja::context! { nul => "/a\0b" };
                let err = env.render_str(&source, ctx).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidOperation, "{source}");
                assert!(err.to_string().contains(needle), "{source}: {err}");
                assert!(err.to_string().contains(name), "{source}: {err}");
            }
        }
    }
}
