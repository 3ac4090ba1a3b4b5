//! The shape every report is written in: a title, then headings, paragraphs, lists and
//! tables of plain text. A report is built once as a [`Doc`] and each format renders it,
//! so Markdown and HTML always say the same thing, and every recorded string is escaped
//! in exactly one place per format: `<script>` in a note is shown, never run, and cannot
//! break the layout.

use std::fmt::Write;

/// One table cell: recorded text, and how it is meant to stand out.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub text: String,
    pub tone: Tone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Muted,
    Good,
    Bad,
}

impl Tone {
    fn class(self) -> Option<&'static str> {
        match self {
            Tone::Plain => None,
            Tone::Muted => Some("muted"),
            Tone::Good => Some("good"),
            Tone::Bad => Some("bad"),
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell {
            text,
            tone: Tone::Plain,
        }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        text.to_owned().into()
    }
}

pub fn cell(text: impl Into<String>, tone: Tone) -> Cell {
    Cell {
        text: text.into(),
        tone,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading(String),
    Para(String),
    Muted(String),
    List(Vec<String>),
    Table {
        head: Vec<&'static str>,
        rows: Vec<Vec<Cell>>,
        /// Said in place of the rows when there are none.
        empty: &'static str,
    },
    /// Something every reader must see first (demo data): a callout in HTML, a quote
    /// in Markdown.
    Notice(String),
    /// Markup the report made itself (the SVG chart), never recorded text. Markdown has no
    /// place for it and says what it left out instead.
    Figure {
        svg: String,
        alt: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub title: String,
    pub blocks: Vec<Block>,
    pub footer: String,
}

/// Escapes text for HTML element content and attribute values.
pub fn esc_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            _ => out.push(printable(c)),
        }
    }
    out
}

/// Escapes text for Markdown: HTML is neutralised (entities) and Markdown's own syntax
/// characters are backslash-escaped, so a renderer shows the text as it was recorded.
pub fn esc_md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '|' | '!' | '{' | '}' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(printable(c)),
        }
    }
    out
}

/// A control character as its visible picture (NUL → ␀, ESC → ␛, DEL → ␡; the C1 range
/// → �), so recorded text with control bytes never makes a report binary to other tools
/// nor drives a terminal that prints it; every other character as it is.
pub fn printable(c: char) -> char {
    match c {
        '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
        '\u{7f}' => '\u{2421}',
        '\u{80}'..='\u{9f}' => '\u{fffd}',
        _ => c,
    }
}

pub const CSS: &str = "body{font:14px/1.5 system-ui,sans-serif;color:#111;max-width:900px;margin:24px auto;padding:0 16px}\
h1{font-size:22px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;width:100%;font-size:13px}td,th{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;vertical-align:top}\
td{overflow-wrap:anywhere}.muted{color:#666}.bad{color:#c62828;font-weight:600}.good{color:#2e7d32;font-weight:600}\
.notice{border-left:4px solid #f9a825;background:#fff8e1;padding:8px 12px;font-weight:600}\
svg{width:100%;height:auto;border:1px solid #eee}\
@page{margin:14mm 12mm}\
@media print{body{margin:0;max-width:none;font-size:11px}table{font-size:10px}\
h1,h2{break-after:avoid;page-break-after:avoid}\
svg,tr,.notice{break-inside:avoid;page-break-inside:avoid}p{orphans:3;widows:3}}";

/// No script, no fetches: only the inline style and the inline SVG.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

impl Doc {
    pub fn markdown(&self) -> String {
        let mut md = format!("# {}\n", esc_md(&self.title));
        for block in &self.blocks {
            match block {
                Block::Heading(t) => {
                    let _ = write!(md, "\n## {}\n", esc_md(t));
                }
                Block::Para(t) | Block::Muted(t) => {
                    let _ = write!(md, "\n{}\n", esc_md(t));
                }
                Block::Notice(t) => {
                    let _ = write!(md, "\n> **{}**\n", esc_md(t));
                }
                Block::List(items) => {
                    md.push('\n');
                    for i in items {
                        let _ = writeln!(md, "- {}", esc_md(i));
                    }
                }
                Block::Table { head, rows, empty } => {
                    if rows.is_empty() {
                        let _ = write!(md, "\n{}\n", esc_md(empty));
                        continue;
                    }
                    let _ = write!(
                        md,
                        "\n| {} |\n|{}\n",
                        head.join(" | "),
                        "---|".repeat(head.len())
                    );
                    for row in rows {
                        let cells: Vec<String> = row.iter().map(|c| esc_md(&c.text)).collect();
                        let _ = writeln!(md, "| {} |", cells.join(" | "));
                    }
                }
                Block::Figure { alt, .. } => {
                    let _ = write!(md, "\n_{} (chart in the HTML report)._\n", esc_md(alt));
                }
            }
        }
        let _ = write!(md, "\n_{}_\n", esc_md(&self.footer));
        md
    }

    pub fn html(&self) -> String {
        let mut h = format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\
             <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{title}</h1>\n",
            title = esc_html(&self.title)
        );
        for block in &self.blocks {
            match block {
                Block::Heading(t) => {
                    let _ = write!(h, "<h2>{}</h2>", esc_html(t));
                }
                Block::Para(t) => {
                    let _ = write!(h, "<p>{}</p>", esc_html(t));
                }
                Block::Muted(t) => {
                    let _ = write!(h, "<p class=\"muted\">{}</p>", esc_html(t));
                }
                Block::Notice(t) => {
                    let _ = write!(h, "<p class=\"notice\" role=\"note\">{}</p>", esc_html(t));
                }
                Block::List(items) => {
                    h.push_str("<ul>\n");
                    for i in items {
                        let _ = writeln!(h, "<li>{}</li>", esc_html(i));
                    }
                    h.push_str("</ul>");
                }
                Block::Table { head, rows, empty } => {
                    if rows.is_empty() {
                        let _ = write!(h, "<p class=\"muted\">{}</p>", esc_html(empty));
                        continue;
                    }
                    h.push_str("<table>\n<tr>");
                    for c in head {
                        let _ = write!(h, "<th>{}</th>", esc_html(c));
                    }
                    h.push_str("</tr>\n");
                    for row in rows {
                        h.push_str("<tr>");
                        for c in row {
                            match c.tone.class() {
                                Some(class) => {
                                    let _ = write!(
                                        h,
                                        "<td class=\"{class}\">{}</td>",
                                        esc_html(&c.text)
                                    );
                                }
                                None => {
                                    let _ = write!(h, "<td>{}</td>", esc_html(&c.text));
                                }
                            }
                        }
                        h.push_str("</tr>\n");
                    }
                    h.push_str("</table>");
                }
                Block::Figure { svg, .. } => h.push_str(svg),
            }
            // One block a line: readable as source, and in a diff.
            h.push('\n');
        }
        let _ = write!(
            h,
            "<p class=\"muted\">{}</p>\n</body>\n</html>\n",
            esc_html(&self.footer)
        );
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_text_is_escaped_in_every_block_of_both_formats() {
        let evil = "<img src=x onerror=alert(1)> *bold* | [x](javascript:y)";
        let doc = Doc {
            title: evil.into(),
            blocks: vec![
                Block::Heading(evil.into()),
                Block::Para(evil.into()),
                Block::List(vec![evil.into()]),
                Block::Table {
                    head: vec!["a"],
                    rows: vec![vec![cell(evil, Tone::Bad)]],
                    empty: "none",
                },
            ],
            footer: evil.into(),
        };
        let html = doc.html();
        assert!(!html.contains("<img"), "{html}");
        // The title twice (title and h1), then heading, paragraph, list, cell and footer.
        assert_eq!(
            html.matches("&lt;img src=x onerror=alert(1)&gt;").count(),
            7
        );
        let md = doc.markdown();
        assert!(!md.contains("<img") && !md.contains("](javascript"), "{md}");
        assert!(!md.contains(" | [") && md.contains("\\*bold\\*"), "{md}");
    }
}
