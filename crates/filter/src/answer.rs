//! Answers to an account that hides its policy labels: the filter holds the response headers,
//! takes each body chunk out of Envoy's buffer into its own (so Envoy's per-stream buffer limit
//! never applies, only `maxAnswerBytes`), and at the end sends the answer the core rewrote.
//! Anything it cannot rewrite (too large, an encoding other than gzip, a body that does not
//! parse) becomes a 502 with the reason: never the unfiltered answer.

use crate::gate::Flow;
use crate::host::{Host, Level};
use tollgate_core::answer::{Answer, AnswerError, HiddenAnswer, gunzip, hide};

enum Phase {
    Buffering,
    /// The answer will be this 502 instead.
    Failed(AnswerError),
    Done,
}

pub struct AnswerRewrite {
    answer: HiddenAnswer,
    status: u16,
    gzip: bool,
    buffered: Vec<u8>,
    phase: Phase,
}

impl AnswerRewrite {
    pub fn new(answer: HiddenAnswer) -> AnswerRewrite {
        AnswerRewrite {
            answer,
            status: 0,
            gzip: false,
            buffered: Vec::new(),
            phase: Phase::Buffering,
        }
    }

    pub fn on_headers(&mut self, host: &impl Host, end_of_stream: bool) -> Flow {
        self.status = host
            .response_header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        match host.response_header("content-encoding").as_deref() {
            None | Some("identity") => {}
            Some(e) if e.eq_ignore_ascii_case("gzip") => self.gzip = true,
            Some(other) => self.fail(host, AnswerError::Encoding(other.to_owned())),
        }
        // A successful answer must be in the format the rewrite reads: JSON, or the text
        // exposition format for /federate (never its protobuf one).
        if (200..300).contains(&self.status) {
            let content_type = host.response_header("content-type").unwrap_or_default();
            let media = content_type.split(';').next().unwrap_or("").trim();
            let expected = match self.answer.shape {
                Answer::Federate => "text/plain",
                _ => "application/json",
            };
            if !media.eq_ignore_ascii_case(expected) {
                self.fail(host, AnswerError::ContentType(content_type));
            }
        }
        // The body changes: its length and encoding are ours to state.
        host.set_response_header("content-length", None);
        host.set_response_header("content-encoding", None);
        if end_of_stream {
            self.phase = Phase::Done;
            return Flow::Continue;
        }
        Flow::Pause
    }

    pub fn on_body(
        &mut self,
        host: &impl Host,
        size: usize,
        end_of_stream: bool,
        max: usize,
    ) -> Flow {
        if matches!(self.phase, Phase::Done) {
            return Flow::Continue;
        }
        let chunk = host.response_body(size);
        // Out of Envoy's buffer whatever happens: nothing of it may go on as it came.
        host.replace_response_body(size, &[]);
        match chunk {
            Ok(chunk) => {
                if matches!(self.phase, Phase::Buffering) {
                    self.buffered.extend_from_slice(&chunk);
                    if self.buffered.len() > max {
                        self.fail(host, AnswerError::TooLarge { max });
                    }
                }
            }
            Err(err) => {
                host.log(Level::Error, &format!("cannot read the answer: {err}"));
                self.fail(host, AnswerError::NotText);
            }
        }
        if end_of_stream {
            return self.finish(host, max);
        }
        Flow::Pause
    }

    /// Trailers end the answer: what is buffered is all of it.
    pub fn on_trailers(&mut self, host: &impl Host, max: usize) -> Flow {
        if matches!(self.phase, Phase::Done) {
            return Flow::Continue;
        }
        self.finish(host, max)
    }

    fn fail(&mut self, host: &impl Host, err: AnswerError) {
        if matches!(self.phase, Phase::Failed(_)) {
            return;
        }
        host.set_response_header(":status", Some("502"));
        host.set_response_header("content-type", Some("application/json"));
        self.buffered = Vec::new();
        self.phase = Phase::Failed(err);
    }

    fn finish(&mut self, host: &impl Host, max: usize) -> Flow {
        if matches!(self.phase, Phase::Buffering) {
            let plain = if self.gzip {
                gunzip(&self.buffered, max)
            } else {
                Ok(std::mem::take(&mut self.buffered))
            };
            let answer = &self.answer;
            match plain.and_then(|plain| hide(&answer.shape, self.status, &answer.hidden, &plain)) {
                Ok(rewritten) => {
                    // Whatever is buffered (nothing, as each chunk was taken) is replaced whole.
                    host.replace_response_body(usize::MAX, &rewritten);
                    self.phase = Phase::Done;
                    return Flow::Continue;
                }
                Err(err) => self.fail(host, err),
            }
        }
        if let Phase::Failed(err) = std::mem::replace(&mut self.phase, Phase::Done) {
            let reason = match err {
                AnswerError::TooLarge { .. } => "answer_too_large",
                _ => "answer_unreadable",
            };
            let body = serde_json::json!({
                "status": "error",
                "errorType": "internal",
                "error": err.to_string(),
                "reason": reason,
            });
            host.log(Level::Warn, &format!("answer refused: {err}"));
            host.replace_response_body(usize::MAX, body.to_string().as_bytes());
        }
        Flow::Continue
    }
}
