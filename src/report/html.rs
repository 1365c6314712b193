//! The HTML report (`--html FILE`, and the web UI's download): one self-contained file — the
//! page, its style and scripts, and the board's data inline — that opens offline: it refers to
//! nothing outside itself (no CDN, font or image; a test checks the file holds no `http://` or
//! `https://` but in the run's own data). The charts are drawn by the same script as the live UI.

use super::board::BoardState;

const PAGE: &str = include_str!("../ui/report.html");
const STYLE: &str = include_str!("../ui/style.css");
/// The UI's scripts, charts first.
pub const SCRIPT: [&str; 2] = [include_str!("../ui/charts.js"), include_str!("../ui/app.js")];

/// The report of `board` as one HTML document.
pub fn render(board: &BoardState) -> String {
    let data = serde_json::to_string(board).unwrap_or_else(|_| "null".into());
    PAGE.replace("/*STYLE*/", STYLE).replace("/*SCRIPT*/", &SCRIPT.join("\n")).replace("/*DATA*/", &script_safe(&data))
}

/// JSON that may sit inside a `<script>` element: no `</` to end it early, and no line
/// separators that older parsers read as line ends.
pub fn script_safe(json: &str) -> String {
    json.replace("</", "<\\/").replace('\u{2028}', "\\u2028").replace('\u{2029}', "\\u2029")
}
