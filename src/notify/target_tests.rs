//! The request shape of every scheme, the events each target is told, and that no URL token
//! shows in what a target prints.

use super::*;
use crate::clock::UnixTime;
use crate::hook::{HookEvent, HookKind};
use crate::record::Family;

fn event(kind: HookKind, recovered: bool) -> HookEvent {
    HookEvent {
        host: "home.example.com".into(),
        family: Family::V4,
        ip: Some("203.0.113.7".parse().unwrap()),
        old_ip: Some("198.51.100.1".parse().unwrap()),
        event: kind,
        error: matches!(kind, HookKind::Error | HookKind::Stopped)
            .then(|| "401 unauthorized".into()),
        reply: if recovered {
            "good".into()
        } else {
            "401 unauthorized".into()
        },
        recovered,
        // 2026-12-05 06:32:09 UTC
        time: UnixTime(1_796_452_329),
        interface: Some("pppoe-wan".into()),
    }
}

fn one(url: &str) -> Target {
    let mut t = parse(url).unwrap();
    assert_eq!(t.len(), 1);
    t.remove(0)
}

fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

fn json(r: &Request) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn rfc3339_is_utc_with_a_z() {
    assert_eq!(rfc3339(UnixTime(0)), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(UnixTime(1_796_452_329)), "2026-12-05T06:32:09Z");
}

#[test]
fn a_plain_url_is_a_json_webhook_with_every_field() {
    let t = one("https://hooks.example.net/dyn/s3cr3t-path?key=abc123");
    let r = t.request(EventKind::Updated, &event(HookKind::Updated, false));
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.url.as_str(),
        "https://hooks.example.net/dyn/s3cr3t-path?key=abc123"
    );
    assert_eq!(header(&r, "Content-Type"), Some("application/json"));
    assert_eq!(
        json(&r),
        serde_json::json!({
            "event": "updated", "host": "home.example.com", "family": "ipv4",
            "ip": "203.0.113.7", "old_ip": "198.51.100.1", "reply": "401 unauthorized",
            "error": null, "time": "2026-12-05T06:32:09Z", "interface": "pppoe-wan"
        })
    );
    let mut first = event(HookKind::Updated, false);
    first.old_ip = None;
    first.interface = None;
    let body = json(&t.request(EventKind::Updated, &first));
    assert_eq!(body["old_ip"], serde_json::Value::Null);
    assert_eq!(body["interface"], serde_json::Value::Null, "present, null");
    assert_eq!(t.to_string(), "https://hooks.example.net/***");
    let shown = t.redact(
        "error for https://hooks.example.net/dyn/s3cr3t-path?key=abc123 and s3cr3t-path, abc123",
    );
    assert!(
        !shown.contains("s3cr3t") && !shown.contains("abc123"),
        "{shown}"
    );
}

#[test]
fn ntfy_posts_the_text_with_title_tags_and_auth_headers() {
    let t = one(
        "ntfy://alice:pa55word@ntfy.example:8080/dyn-topic?title=Router&priority=high&scheme=http",
    );
    let r = t.request(EventKind::Stopped, &event(HookKind::Stopped, false));
    assert_eq!(
        (r.method, r.url.as_str()),
        ("POST", "http://ntfy.example:8080/dyn-topic")
    );
    assert_eq!(header(&r, "Title"), Some("Router"));
    assert_eq!(header(&r, "Priority"), Some("high"));
    assert_eq!(header(&r, "Tags"), Some("rotating_light"));
    assert_eq!(
        header(&r, "Authorization"),
        Some("Basic YWxpY2U6cGE1NXdvcmQ=")
    );
    let text = String::from_utf8(r.body).unwrap();
    assert!(
        text.contains("home.example.com (A) is stopped after \"401 unauthorized\""),
        "{text}"
    );
    assert_eq!(t.to_string(), "ntfy://ntfy.example:8080/***");
    // An access token, https by default, a default title.
    let t = one("ntfy://:tk_abcdef@ntfy.sh/alerts");
    let r = t.request(EventKind::Updated, &event(HookKind::Updated, false));
    assert_eq!(r.url.as_str(), "https://ntfy.sh/alerts");
    assert_eq!(header(&r, "Authorization"), Some("Bearer tk_abcdef"));
    assert_eq!(
        header(&r, "Title"),
        Some("dynhostd: home.example.com updated")
    );
    assert!(parse("ntfy://ntfy.sh/").is_err());
    assert!(
        parse("ntfy://ntfy.sh/a?icon=x")
            .unwrap_err()
            .contains("\"icon\" is not supported")
    );
}

#[test]
fn gotify_posts_json_with_the_token_in_a_header() {
    let t = one("gotify://gotify.example/sub/path/AppT0ken?priority=8&disabletls=yes");
    let r = t.request(EventKind::Recovered, &event(HookKind::Updated, true));
    assert_eq!(
        (r.method, r.url.as_str()),
        ("POST", "http://gotify.example/sub/path/message")
    );
    assert_eq!(header(&r, "X-Gotify-Key"), Some("AppT0ken"));
    let v = json(&r);
    assert_eq!(v["priority"], 8);
    assert_eq!(v["title"], "dynhostd: home.example.com recovered");
    assert!(v["message"].as_str().unwrap().contains("recovered"));
    assert!(
        !r.url.as_str().contains("AppT0ken"),
        "the token stays out of the URL"
    );
    assert_eq!(t.to_string(), "gotify://gotify.example/***");
    assert!(parse("gotify://gotify.example/").is_err());
}

#[test]
fn discord_posts_content_to_its_webhook() {
    let t = one("discord://Tok-en_123@987654321?username=router");
    let r = t.request(EventKind::Updated, &event(HookKind::Updated, false));
    assert_eq!(
        r.url.as_str(),
        "https://discord.com/api/webhooks/987654321/Tok-en_123"
    );
    let v = json(&r);
    assert_eq!(v["username"], "router");
    assert!(
        v["content"]
            .as_str()
            .unwrap()
            .contains("203.0.113.7, was 198.51.100.1")
    );
    assert_eq!(t.to_string(), "discord://***@987654321");
    assert!(!format!("{t:?}").contains("Tok-en"));
    assert!(parse("discord://987654321").is_err());
}

#[test]
fn slack_takes_a_webhook_token_a_bot_token_or_the_webhook_url() {
    let t = one("slack://hook:T000-B000-XXXX@webhook?botname=router");
    let r = t.request(EventKind::Updated, &event(HookKind::Updated, false));
    assert_eq!(
        r.url.as_str(),
        "https://hooks.slack.com/services/T000/B000/XXXX"
    );
    let v = json(&r);
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .contains("now points at 203.0.113.7")
    );
    assert_eq!(v["username"], "router");
    let t = one("slack://xoxb:1234-5678-abcd@C0CHANNEL");
    let r = t.request(EventKind::Updated, &event(HookKind::Updated, false));
    assert_eq!(r.url.as_str(), "https://slack.com/api/chat.postMessage");
    assert_eq!(
        header(&r, "Authorization"),
        Some("Bearer xoxb-1234-5678-abcd")
    );
    assert_eq!(json(&r)["channel"], "C0CHANNEL");
    let t = one("https://hooks.slack.com/services/T1/B1/Z1");
    let r = t.request(EventKind::Updated, &event(HookKind::Updated, false));
    assert!(
        json(&r)["text"].is_string(),
        "Slack's shape, not the generic body"
    );
    assert!(parse("slack://bot:x@y").is_err());
    assert!(parse("slack://hook:only-two@webhook").is_err());
}

#[test]
fn telegram_sends_to_each_chat() {
    let t = parse("telegram://123456:ABC-def@telegram?chats=@dyn,-1001&notification=no").unwrap();
    assert_eq!(t.len(), 2);
    let r = t[1].request(EventKind::Updated, &event(HookKind::Updated, false));
    assert_eq!(
        r.url.as_str(),
        "https://api.telegram.org/bot123456:ABC-def/sendMessage"
    );
    let v = json(&r);
    assert_eq!(
        (v["chat_id"].as_str(), v["disable_notification"].as_bool()),
        (Some("-1001"), Some(true))
    );
    assert_eq!(t[0].to_string(), "telegram://***@telegram?chats=@dyn");
    assert!(
        !t[0]
            .redact("x https://api.telegram.org/bot123456:ABC-def/sendMessage")
            .contains("ABC-def")
    );
    assert!(
        parse("telegram://123456:ABC@telegram")
            .unwrap_err()
            .contains("chats")
    );
    assert!(parse("telegram://123456:ABC@telegram?chats=1&parsemode=html").is_err());
}

#[test]
fn generic_is_the_json_webhook_with_shoutrrr_s_options() {
    let t = one("generic+http://127.0.0.1:8080/hook?method=put&x=1");
    let r = t.request(EventKind::Error, &event(HookKind::Error, false));
    assert_eq!(
        (r.method, r.url.as_str()),
        ("PUT", "http://127.0.0.1:8080/hook?x=1")
    );
    assert_eq!(json(&r)["error"], "401 unauthorized");
    assert_eq!(
        one("generic://example.net/h")
            .request(EventKind::Updated, &event(HookKind::Updated, false))
            .url
            .as_str(),
        "https://example.net/h"
    );
    assert_eq!(
        one("generic://example.net/h?disabletls=yes")
            .request(EventKind::Updated, &event(HookKind::Updated, false))
            .url
            .scheme(),
        "http"
    );
    assert!(
        parse("generic://example.net/h?template=json")
            .unwrap_err()
            .contains("always the documented JSON")
    );
    assert!(parse("generic://example.net/h?$extra=1").is_err());
    // shoutrrr's `@header` and `_escaped` forwarding.
    let t =
        one("generic+https://example.net/h?@authorization=Bearer+T0k&@acceptLanguage=fr&_method=x");
    let r = t.request(EventKind::Updated, &event(HookKind::Updated, false));
    assert_eq!(header(&r, "authorization"), Some("Bearer T0k"));
    assert_eq!(header(&r, "accept-Language"), Some("fr"));
    assert_eq!(r.url.as_str(), "https://example.net/h?method=x");
    assert!(!t.redact("sent Bearer T0k").contains("T0k"));
    assert!(
        parse("pushover://x@y")
            .unwrap_err()
            .contains("not supported")
    );
    let e = parse("ntfy://user:hunter2@ntfy.sh/a?bogus=hunter2").unwrap_err();
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn each_target_is_told_what_it_takes_and_an_address_change_is_never_lost() {
    let all = Events::of(&EventKind::ALL);
    let default = Events::default_set();
    let updated_only = Events::of(&[EventKind::Updated]);
    let recovered_change = event(HookKind::Updated, true);
    let mut recovered_nochg = event(HookKind::Unchanged, true);
    recovered_nochg.error = None;
    assert_eq!(all.event_for(&recovered_change), Some(EventKind::Recovered));
    assert_eq!(
        updated_only.event_for(&recovered_change),
        Some(EventKind::Updated)
    );
    assert_eq!(updated_only.event_for(&recovered_nochg), None);
    assert_eq!(
        default.event_for(&event(HookKind::Error, false)),
        None,
        "error is opt-in"
    );
    assert_eq!(
        all.event_for(&event(HookKind::Error, false)),
        Some(EventKind::Error)
    );
    assert_eq!(
        default.event_for(&event(HookKind::Stopped, false)),
        Some(EventKind::Stopped)
    );
    assert_eq!(all.event_for(&event(HookKind::Unchanged, false)), None);
}
