//! Writing user text into Slack mrkdwn so that it reads as written and can do nothing else: no
//! ping, no link, no formatting that leaks past it.
//!
//! - `&`, `<` and `>` become `&amp;`, `&lt;` and `&gt;` (Slack's own escaping): this is what stops
//!   `<!channel>`, `<@U123>` and `<https://evil|click>`.
//! - mrkdwn has no escape for its formatting characters, so `*`, `_`, `~` and `` ` `` in user text
//!   become look-alikes that Slack does not interpret: `∗` (U+2217), `ˍ` (U+02CD), `∼` (U+223C)
//!   and `ˋ` (U+02CB). A title such as ``fix `*ptr` in foo_bar`` keeps its look and cannot turn
//!   the rest of the message bold or into code. (A zero-width joiner next to the character was
//!   the other option; Slack's parser treats it inconsistently, so look-alikes it is.)
//! - Control characters (other than line breaks where lines are kept) are dropped.
//!
//! Formatting herald adds itself (bold labels, links, dates) is written around escaped text.

use time::OffsetDateTime;

/// Escapes one line of user text (line breaks become spaces).
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 8);
    push_escaped(&mut escaped, text);
    escaped
}

/// Appends `text` escaped to `out`.
pub fn push_escaped(out: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '*' => out.push('\u{2217}'),
            '_' => out.push('\u{02CD}'),
            '~' => out.push('\u{223C}'),
            '`' => out.push('\u{02CB}'),
            '\n' | '\t' => out.push(' '),
            ch if ch.is_control() => {}
            ch => out.push(ch),
        }
    }
}

/// A link whose label is user text: `<url|label>`. Only `http(s)` URLs become links (anything
/// else, or nothing, leaves the label alone); `|` and `>` cannot end the URL early.
pub fn link(url: &str, label: &str) -> String {
    let label = escape(label);
    let url = url.trim();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return label;
    }
    let mut safe = String::with_capacity(url.len());
    for ch in url.chars() {
        match ch {
            '&' => safe.push_str("&amp;"),
            '<' => safe.push_str("%3C"),
            '>' => safe.push_str("%3E"),
            '|' => safe.push_str("%7C"),
            ' ' => safe.push_str("%20"),
            ch if ch.is_control() => {}
            ch => safe.push(ch),
        }
    }
    if label.is_empty() {
        format!("<{safe}>")
    } else {
        format!("<{safe}|{label}>")
    }
}

/// A time every reader sees in their own zone: `<!date^UNIX^{date_short_pretty} at
/// {time}|2026-11-29 10:15 UTC>` (the fallback is for clients that cannot format it).
pub fn date(unix_ms: i64) -> String {
    let seconds = unix_ms.div_euclid(1000);
    let fallback = OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .map_or_else(
            || seconds.to_string(),
            |at| {
                format!(
                    "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                    at.year(),
                    u8::from(at.month()),
                    at.day(),
                    at.hour(),
                    at.minute()
                )
            },
        );
    format!("<!date^{seconds}^{{date_short_pretty}} at {{time}}|{fallback}>")
}

/// Most labels (or names) a message lists; the rest are counted.
pub const MAX_LISTED: usize = 10;
/// Longest label shown (GitHub's own limit is 50).
const MAX_LABEL_CHARS: usize = 50;

/// Labels as inline code (`` `bug` ``), escaped; at most [`MAX_LISTED`], then `+N more`, so a
/// flood of labels cannot push a block past Slack's limits.
pub fn labels(names: &[impl AsRef<str>]) -> String {
    let mut listed: Vec<String> = names
        .iter()
        .take(MAX_LISTED)
        .map(|name| {
            let name: String = name.as_ref().chars().take(MAX_LABEL_CHARS).collect();
            format!("`{}`", escape(&name))
        })
        .collect();
    if names.len() > MAX_LISTED {
        listed.push(format!("+{} more", names.len() - MAX_LISTED));
    }
    listed.join(", ")
}

/// Logins, escaped; at most [`MAX_LISTED`], then `+N more`.
pub fn names(logins: &[impl AsRef<str>]) -> String {
    let mut listed: Vec<String> = logins
        .iter()
        .take(MAX_LISTED)
        .map(|login| escape(login.as_ref()))
        .collect();
    if logins.len() > MAX_LISTED {
        listed.push(format!("+{} more", logins.len() - MAX_LISTED));
    }
    listed.join(", ")
}

/// Longest excerpt, in characters of the source text.
pub const EXCERPT_CHARS: usize = 300;
/// Most lines an excerpt keeps.
pub const EXCERPT_LINES: usize = 6;

/// The start of a GitHub Markdown body as mrkdwn lines (escaped, ready to quote): line breaks
/// kept, blank runs folded, HTML comments (issue templates) dropped, code blocks and images
/// replaced by a short note, links reduced to their text, headings bold, list bullets kept. Cut
/// at `max_lines` lines or `max_chars` characters of text, at a word, with `…`.
pub fn excerpt(body: &str, max_chars: usize, max_lines: usize) -> Vec<String> {
    let body = strip_html_comments(body);
    let mut lines: Vec<String> = Vec::new();
    let mut budget = max_chars;
    let mut source = body.lines().peekable();
    let mut blank = false;
    let mut cut = false;
    while let Some(raw) = source.next() {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            blank = !lines.is_empty();
            continue;
        }
        if lines.len() + usize::from(blank) >= max_lines || budget == 0 {
            cut = true;
            break;
        }
        if blank {
            lines.push(String::new());
            blank = false;
        }
        if let Some(fence) = fence_of(trimmed) {
            let mut count = 0;
            for line in source.by_ref() {
                if line.trim().starts_with(fence) {
                    break;
                }
                count += 1;
            }
            let note = format!(
                "_[code, {count} line{}]_",
                if count == 1 { "" } else { "s" }
            );
            budget = budget.saturating_sub(10);
            lines.push(note);
            continue;
        }
        let (prefix, text) = block_prefix(trimmed);
        let length = text.chars().count();
        let (text, shortened) = if length > budget {
            (cut_at_word(text, budget), true)
        } else {
            (text.to_owned(), false)
        };
        budget = budget.saturating_sub(length);
        let mut rendered = match prefix {
            Prefix::Heading => format!("*{}*", inline(&text)),
            Prefix::Bullet(bullet) => format!("{bullet} {}", inline(&text)),
            Prefix::Numbered(number) => format!("{number}. {}", inline(&text)),
            Prefix::Plain => inline(&text),
        };
        if shortened {
            rendered.push('…');
            return lines_with(lines, rendered);
        }
        lines.push(rendered);
    }
    if cut && let Some(last) = lines.last_mut() {
        last.push_str(" …");
    }
    lines
}

fn lines_with(mut lines: Vec<String>, last: String) -> Vec<String> {
    lines.push(last);
    lines
}

/// Lines quoted as one mrkdwn block quote (an empty line stays inside the quote).
pub fn quote(lines: &[String]) -> String {
    lines
        .iter()
        .map(|line| format!(">{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn strip_html_comments(body: &str) -> std::borrow::Cow<'_, str> {
    if !body.contains("<!--") {
        return body.into();
    }
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        match rest[start..].find("-->") {
            Some(end) => rest = &rest[start + end + 3..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.into()
}

fn fence_of(line: &str) -> Option<&'static str> {
    if line.starts_with("```") {
        Some("```")
    } else if line.starts_with("~~~") {
        Some("~~~")
    } else {
        None
    }
}

enum Prefix {
    Heading,
    Bullet(&'static str),
    Numbered(u32),
    Plain,
}

fn block_prefix(line: &str) -> (Prefix, &str) {
    let hashes = line.chars().take_while(|c| *c == '#').count();
    if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
        return (Prefix::Heading, line[hashes..].trim());
    }
    for task in ["- [ ] ", "* [ ] ", "- [x] ", "* [x] ", "- [X] ", "* [X] "] {
        if let Some(rest) = line.strip_prefix(task) {
            let bullet = if task.as_bytes()[3] == b' ' {
                "☐"
            } else {
                "☑"
            };
            return (Prefix::Bullet(bullet), rest.trim());
        }
    }
    for bullet in ["- ", "* ", "+ "] {
        if let Some(rest) = line.strip_prefix(bullet) {
            return (Prefix::Bullet("•"), rest.trim());
        }
    }
    if let Some((number, rest)) = line.split_once(". ")
        && let Ok(number) = number.parse::<u32>()
    {
        return (Prefix::Numbered(number), rest.trim());
    }
    if let Some(rest) = line.strip_prefix('>') {
        return (Prefix::Plain, rest.trim());
    }
    (Prefix::Plain, line)
}

/// At most `max` characters, cut at the last space when there is one in the second half.
fn cut_at_word(text: &str, max: usize) -> String {
    let cut: String = text.chars().take(max).collect();
    match cut.rfind(' ') {
        Some(space) if space >= cut.len() / 2 => cut[..space].trim_end().to_owned(),
        _ => cut,
    }
}

/// One line of Markdown as mrkdwn: images become `[image: alt]`, links their text, inline code
/// stays code (its content escaped), `**`/`__` emphasis markers are dropped, and everything else
/// is escaped.
fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("![")
            && let Some((alt, tail)) = bracketed_link(after)
        {
            if alt.trim().is_empty() {
                out.push_str("[image]");
            } else {
                out.push_str("[image: ");
                push_escaped(&mut out, alt.trim());
                out.push(']');
            }
            rest = tail;
            continue;
        }
        if let Some(after) = rest.strip_prefix('[')
            && let Some((label, tail)) = bracketed_link(after)
        {
            push_escaped(&mut out, label);
            rest = tail;
            continue;
        }
        if rest
            .get(..4)
            .is_some_and(|start| start.eq_ignore_ascii_case("<img"))
        {
            match rest.find('>') {
                Some(end) => {
                    out.push_str("[image]");
                    rest = &rest[end + 1..];
                    continue;
                }
                None => {
                    out.push_str("[image]");
                    break;
                }
            }
        }
        if let Some(after) = rest.strip_prefix('`')
            && let Some(end) = after.find('`')
            && end > 0
        {
            out.push('`');
            push_escaped(&mut out, &after[..end]);
            out.push('`');
            rest = &after[end + 1..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("**").or_else(|| rest.strip_prefix("__")) {
            rest = after;
            continue;
        }
        let ch = rest.chars().next().expect("not empty");
        let mut buffer = [0u8; 4];
        push_escaped(&mut out, ch.encode_utf8(&mut buffer));
        rest = &rest[ch.len_utf8()..];
    }
    out
}

/// `label](url)rest` → `(label, rest)`.
fn bracketed_link(after_bracket: &str) -> Option<(&str, &str)> {
    let close = after_bracket.find("](")?;
    let label = &after_bracket[..close];
    if label.contains('[') {
        return None;
    }
    let url_and_rest = &after_bracket[close + 2..];
    let end = url_and_rest.find(')')?;
    Some((label, &url_and_rest[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_slack_would_interpret() {
        let table = [
            ("<!channel>", "&lt;!channel&gt;"),
            ("<https://evil|click>", "&lt;https://evil|click&gt;"),
            ("<@U123> & co", "&lt;@U123&gt; &amp; co"),
            ("&amp;", "&amp;amp;"),
            ("*bold* _it_ ~del~ `code`", "∗bold∗ ˍitˍ ∼del∼ ˋcodeˋ"),
            ("two\nlines\u{7}", "two lines"),
        ];
        for (input, expected) in table {
            assert_eq!(escape(input), expected, "{input:?}");
        }
    }

    #[test]
    fn links_keep_their_url_inside_and_their_label_escaped() {
        assert_eq!(
            link("https://github.com/o/r/issues/1", "#1 <b>|x"),
            "<https://github.com/o/r/issues/1|#1 &lt;b&gt;|x>"
        );
        assert_eq!(
            link("https://e.com/a|b>c&d", "x"),
            "<https://e.com/a%7Cb%3Ec&amp;d|x>"
        );
        assert_eq!(link("javascript:alert(1)", "*x*"), "∗x∗");
        assert_eq!(link("", "plain"), "plain");
    }

    #[test]
    fn dates_carry_a_fallback() {
        assert_eq!(
            date(1_557_933_565_123),
            "<!date^1557933565^{date_short_pretty} at {time}|2019-05-15 15:19 UTC>"
        );
    }

    #[test]
    fn excerpts_keep_lines_and_shorten_sensibly() {
        let body = "<!-- template: describe the bug -->\r\n## Steps\r\n\r\n\r\n1. open **the** [page](https://x)\r\n- click `a<b>`\r\n- [ ] done?\r\n```rust\nfn main() {}\nlet x = 1;\n```\n![screenshot](https://img)\n<img src=x>";
        assert_eq!(
            excerpt(body, 300, 10),
            vec![
                "*Steps*",
                "",
                "1. open the page",
                "• click `a&lt;b&gt;`",
                "☐ done?",
                "_[code, 2 lines]_",
                "[image: screenshot]",
                "[image]",
            ]
        );
        assert_eq!(excerpt("a\nb\nc\nd", 300, 2), vec!["a", "b …"]);
        assert_eq!(
            excerpt("héllo wörld and more words", 12, 5),
            vec!["héllo wörld…"]
        );
        assert!(excerpt("", 10, 5).is_empty());
        assert!(excerpt("<!-- only a comment", 10, 5).is_empty());
    }

    #[test]
    fn unbalanced_markdown_is_just_escaped() {
        assert_eq!(excerpt("`open [x](y *z", 300, 5), vec!["ˋopen [x](y ∗z"]);
        assert_eq!(excerpt("[a [b](c)", 300, 5), vec!["[a b"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn no_text_breaks_out(body in "(\\PC|[<>&*_~`\\[\\]()!#\n-]){0,400}") {
            for line in excerpt(&body, 120, 4) {
                proptest::prop_assert!(!line.contains('<') && !line.contains('>'), "{line}");
                proptest::prop_assert!(!line.contains('\n'));
            }
            let escaped = escape(&body);
            proptest::prop_assert!(!escaped.contains(['<', '>', '*', '_', '~', '`', '\n']), "{escaped}");
        }
    }
}
