//! Slack Block Kit rendering of chat messages: pure, so snapshot tests can
//! pin what people see.

use serde_json::{Value as Json, json};

use super::ChatMessage;

/// Section text is capped at 3,000 characters by Slack.
const SECTION_MAX: usize = 3000;

/// The blocks for a message. `text` stays the notification fallback.
pub fn render(msg: &ChatMessage) -> Json {
    json!([{
        "type": "section",
        "text": {"type": "mrkdwn", "text": clip(&msg.text, SECTION_MAX)},
    }])
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_clipped_to_slacks_section_limit() {
        let m = ChatMessage {
            text: "x".repeat(5000),
            ..Default::default()
        };
        let b = render(&m);
        assert_eq!(b[0]["text"]["text"].as_str().unwrap().chars().count(), 3000);
    }
}
