//! The posted fields of the dashboard's longer forms (add a job, set a job scheduler)
//! and how those forms draw a field. One place, so both read an empty field as "not
//! given" (the option keeps its default, as when `baton add` is run without the flag)
//! and both show a refusal above the values the viewer typed, never an empty form.

use std::str::FromStr;

use maud::{html, Markup};

/// A form's fields as posted (or as prefilled from what is stored).
#[derive(Debug, Default, Clone)]
pub(super) struct Fields(Vec<(String, String)>);

impl Fields {
    /// The fields of a urlencoded body.
    pub fn parse(body: &[u8]) -> Fields {
        Fields(super::layout::form_pairs(body))
    }

    /// Sets `name` to `value` (prefilling a form).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_string(), value.into()));
    }

    /// The field as typed ("" when absent): what the form shows again.
    pub fn raw(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The field trimmed, `None` when empty: an option left out.
    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.raw(name).trim())
            .filter(|t| !t.is_empty())
            .map(String::from)
    }

    /// A whole number, `None` when empty; `label` names the field in the refusal.
    pub fn whole<T: FromStr>(&self, name: &str, label: &str) -> Result<Option<T>, String> {
        self.opt(name)
            .map(|t| {
                t.parse::<T>()
                    .map_err(|_| format!("{label} must be a whole number, got {t:?}"))
            })
            .transpose()
    }

    /// The JSON in textarea `name` (empty: `null`, as the API reads a missing `data`);
    /// a refusal says where the JSON breaks.
    pub fn json(&self, name: &str, label: &str) -> Result<serde_json::Value, String> {
        let t = self.raw(name).trim();
        if t.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(t).map_err(|e| format!("{label} is not valid JSON: {e}"))
    }
}

/// One labelled text field, shown with what was typed.
pub(super) fn text(f: &Fields, name: &str, label: &str, placeholder: &str, hint: &str) -> Markup {
    html! {
        label for=(name) { (label) }
        div {
            input type="text" id=(name) name=(name) value=(f.raw(name)) placeholder=(placeholder);
            @if !hint.is_empty() { " " small.muted { (hint) } }
        }
    }
}

/// A labelled JSON textarea.
pub(super) fn json_area(f: &Fields, name: &str, label: &str, placeholder: &str) -> Markup {
    html! {
        label for=(name) { (label) }
        div {
            textarea id=(name) name=(name) rows="8" spellcheck="false" placeholder=(placeholder) { (f.raw(name)) }
            small.muted { "JSON; empty is null." }
        }
    }
}

/// The refusal above a form, if any.
pub(super) fn error(why: Option<&str>) -> Markup {
    html! {
        @if let Some(why) = why {
            p.flash.error #form-error role="alert" { "Refused, nothing changed: " (why) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Fields;

    #[test]
    fn empty_is_not_given_and_numbers_are_checked() {
        let f = Fields::parse(b"a=+&n=5&bad=x&j=%7B%22k%22%3A1%7D&broken=%7B");
        assert_eq!(f.opt("a"), None);
        assert_eq!(f.opt("missing"), None);
        assert_eq!(f.whole::<u32>("n", "n"), Ok(Some(5)));
        assert!(f
            .whole::<u32>("bad", "attempts")
            .unwrap_err()
            .contains("attempts"));
        assert_eq!(f.json("j", "payload"), Ok(serde_json::json!({"k": 1})));
        assert_eq!(f.json("a", "payload"), Ok(serde_json::Value::Null));
        assert!(f
            .json("broken", "payload")
            .unwrap_err()
            .starts_with("payload is not valid JSON"));
    }
}
