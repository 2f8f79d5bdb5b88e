//! The `Check` RPC served with its answer already encoded: a [`CheckAnswer`] is the bytes of an
//! `envoy.service.auth.v3.CheckResponse`, and [`CheckServer`] sends them as they are.
//!
//! Why not the generated `AuthorizationServer`: it encodes a prost `CheckResponse`, and prost
//! recomputes the length of every nested message at every level it is nested in. The access-log
//! metadata (`Struct` in `Value` in `Struct`, two hash maps) alone cost 5,700 instructions per
//! Check to encode, and building it 2,000 more (callgrind, `tollgate-bench check-instructions`),
//! when the whole of the trivial server's Check is 74,000. An allowed request's answer is
//! written here field by field instead (see `authz::allow_answer`); a denial, rarer and
//! shaped by the one denial table, is still a prost message, encoded once.
//!
//! The requests are decoded by prost as before.

use super::authz::AuthzService;
use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse};
use prost::Message;
use prost::bytes::BufMut;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, StdError, http};
use tonic_prost::ProstDecoder;

/// The encoded bytes of one `CheckResponse`.
pub struct CheckAnswer(Vec<u8>);

impl CheckAnswer {
    /// A prost message, encoded.
    pub fn encode(response: &CheckResponse) -> CheckAnswer {
        CheckAnswer(response.encode_to_vec())
    }

    /// The answer written by hand with a [`ProtoWriter`].
    pub(crate) fn from_written(writer: ProtoWriter) -> CheckAnswer {
        CheckAnswer(writer.0)
    }

    /// The answer as Envoy reads it, decoded by prost (for tests and tools).
    pub fn decode(&self) -> Result<CheckResponse, prost::DecodeError> {
        CheckResponse::decode(self.0.as_slice())
    }
}

impl std::fmt::Debug for CheckAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.decode() {
            Ok(response) => response.fmt(f),
            Err(err) => write!(f, "CheckAnswer(undecodable: {err})"),
        }
    }
}

/// Protobuf's wire format, for the fields of an answer: strings, varints and nested messages.
pub(crate) struct ProtoWriter(Vec<u8>);

/// Wire types (protobuf encoding spec).
const VARINT: u32 = 0;
const LENGTH_DELIMITED: u32 = 2;

impl ProtoWriter {
    pub(crate) fn with_capacity(capacity: usize) -> ProtoWriter {
        ProtoWriter(Vec::with_capacity(capacity))
    }

    fn key(&mut self, field: u32, wire_type: u32) {
        prost::encoding::encode_varint(u64::from(field << 3 | wire_type), &mut self.0);
    }

    /// A `string` field (or one element of a repeated one). Written even when empty: proto3
    /// reads an empty string and an absent one alike.
    pub(crate) fn string(&mut self, field: u32, value: &str) {
        self.key(field, LENGTH_DELIMITED);
        prost::encoding::encode_varint(value.len() as u64, &mut self.0);
        self.0.extend_from_slice(value.as_bytes());
    }

    /// An `int32` or enum field.
    pub(crate) fn int32(&mut self, field: u32, value: i32) {
        self.key(field, VARINT);
        // Protobuf writes a negative int32 as its 64-bit two's complement.
        prost::encoding::encode_varint(i64::from(value) as u64, &mut self.0);
    }

    /// A nested message field (or one element of a repeated one), its fields written by `body`.
    /// Its length is known only afterwards: one byte is kept for it, which is enough below
    /// 128 bytes; a longer message moves once to make room.
    pub(crate) fn message(&mut self, field: u32, body: impl FnOnce(&mut ProtoWriter)) {
        self.key(field, LENGTH_DELIMITED);
        let at = self.0.len();
        self.0.push(0);
        body(self);
        let len = self.0.len() - at - 1;
        match (u8::try_from(len), self.0.get_mut(at)) {
            (Ok(short @ 0..=0x7f), Some(slot)) => *slot = short,
            _ => {
                let mut prefix =
                    Vec::with_capacity(prost::encoding::encoded_len_varint(len as u64));
                prost::encoding::encode_varint(len as u64, &mut prefix);
                self.0.splice(at..at + 1, prefix);
            }
        }
    }
}

/// Decodes CheckRequests with prost; encodes a [`CheckAnswer`] by copying its bytes.
#[derive(Clone, Copy, Default)]
struct CheckCodec;

impl Codec for CheckCodec {
    type Encode = CheckAnswer;
    type Decode = CheckRequest;
    type Encoder = AnswerEncoder;
    type Decoder = ProstDecoder<CheckRequest>;

    fn encoder(&mut self) -> AnswerEncoder {
        AnswerEncoder
    }

    fn decoder(&mut self) -> ProstDecoder<CheckRequest> {
        ProstDecoder::default()
    }
}

struct AnswerEncoder;

impl Encoder for AnswerEncoder {
    type Item = CheckAnswer;
    type Error = tonic::Status;

    fn encode(&mut self, item: CheckAnswer, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item.0);
        Ok(())
    }
}

/// `envoy.service.auth.v3.Authorization`, its `Check` answered by [`AuthzService::check`].
#[derive(Clone)]
pub struct CheckServer {
    service: Arc<AuthzService>,
    /// The largest CheckRequest decoded: room for the largest body the write limits accept
    /// and the request's headers, so such a body gets an answer rather than a gRPC error.
    max_request_bytes: usize,
}

/// What a CheckRequest holds besides its body: its headers (twice with `encode_raw_headers`)
/// and attributes. Envoy's header limit is 60 KiB by default; raised past about 500 KiB, a
/// request with a body at the write limit is refused as too large (503 through Envoy).
const CHECK_REQUEST_HEADROOM: usize = 1 << 20;
/// tonic's default, kept as the least.
const MIN_REQUEST_BYTES: usize = 4 << 20;

impl CheckServer {
    pub fn new(service: AuthzService) -> CheckServer {
        let max_request_bytes = service
            .write_limits()
            .max_body_bytes
            .saturating_add(CHECK_REQUEST_HEADROOM)
            .max(MIN_REQUEST_BYTES);
        CheckServer {
            service: Arc::new(service),
            max_request_bytes,
        }
    }
}

impl tonic::server::NamedService for CheckServer {
    const NAME: &'static str = "envoy.service.auth.v3.Authorization";
}

const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// One Check: synchronous (memory only), so its future is ready at once.
struct CheckMethod(Arc<AuthzService>);

impl tonic::server::UnaryService<CheckRequest> for CheckMethod {
    type Response = CheckAnswer;
    type Future = Ready<Result<tonic::Response<CheckAnswer>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<CheckRequest>) -> Self::Future {
        ready(self.0.check(request.get_ref()).map(tonic::Response::new))
    }
}

impl<B> tonic::codegen::Service<http::Request<B>> for CheckServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != CHECK_PATH {
            // As tonic's generated servers answer a method they do not have.
            return Box::pin(ready(Ok(tonic::Status::unimplemented(
                "no such method in envoy.service.auth.v3.Authorization",
            )
            .into_http())));
        }
        let method = CheckMethod(self.service.clone());
        let max_request_bytes = self.max_request_bytes;
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(CheckCodec).max_decoding_message_size(max_request_bytes);
            Ok(grpc.unary(method, request).await)
        })
    }
}
