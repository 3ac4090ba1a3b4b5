//! Text from elsewhere, made safe to show in a terminal or a log line.

/// `text` cut to at most `max` bytes, on a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Recorded text for a terminal: at most `max` bytes, control characters (a hostile
/// record's escape sequences among them) written out as `\u{…}`.
pub fn shorten(text: &str, max: usize) -> String {
    let short = cut(text, max);
    let mut out: String = short
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    if short.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_text_for_a_terminal_has_no_control_characters_and_says_when_it_was_cut() {
        assert_eq!(shorten("plain", 100), "plain");
        assert_eq!(
            shorten("tele\u{1b}[2Jport\u{7}", 100),
            "tele\\u{1b}[2Jport\\u{7}"
        );
        // Cut on a character boundary (é is two bytes), and marked.
        assert_eq!(shorten("aé b", 2), "a…");
        assert_eq!(shorten("aé b", 3), "aé…");
    }
}
