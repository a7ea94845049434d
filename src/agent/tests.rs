//! The agent shell's own unit tests (the black-box ones are in tests/).

use super::*;
use crate::record::Family;

/// A push for a record the running configuration has no `[[host]]` for is answered with an
/// error (it used to be dropped, leaving the record "sending" for ever): the decider gets an
/// outcome that says why.
#[tokio::test]
async fn a_push_with_no_host_is_answered_with_an_error() {
    let text = "[[host]]\nhostname = \"home.example.com\"\nlogin = \"l\"\npassword = \"pw\"\n";
    let config = crate::config::parse(text, None, Path::new("/")).unwrap();
    let mut pusher = Pusher::new(&config, false, Prepared::build(&config, None).unwrap());
    let key = RecordKey::new("gone.example.com", Family::V4);
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    pusher.start(Push {
        key: key.clone(),
        ip,
        previous: None,
    });
    let Some(Done::Push(k, sent, reply)) = pusher.next().await else {
        panic!("the push was dropped without an answer");
    };
    assert_eq!((k, sent), (key, ip));
    assert!(
        matches!(reply, Reply::Transport { .. }),
        "{}",
        reply.summary()
    );
    assert!(
        reply.summary().contains("no [[host]] entry"),
        "{}",
        reply.summary()
    );
    assert!(pusher.queued.is_empty(), "nothing was queued for a request");
}
