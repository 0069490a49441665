//! The protobuf codec of the `warden.v1` services: prost's, except that a message that does
//! not decode is the sender's mistake.
//!
//! tonic's prost codec reports a body that is not a valid protobuf message of the method's
//! request type as INTERNAL (gRPC's own status-code table says so), which reads as a
//! server fault, is logged and alerted on like one, and hides from the caller that its
//! bytes were wrong. Warden answers INVALID_ARGUMENT naming the request instead.
//! `build.rs` points the generated servers here (`codec_path`); the clients, generated in
//! the `warden-client` crate, keep prost's codec.

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// [`ProstCodec`] with decode failures as INVALID_ARGUMENT.
pub struct Codec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = MessageDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        MessageDecoder(self.0.decoder())
    }
}

/// Decodes one message; a malformed one is INVALID_ARGUMENT.
pub struct MessageDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for MessageDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|s| {
            Status::invalid_argument(format!(
                "request: the body is not a valid protobuf message of this method: {}",
                s.message()
            ))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
