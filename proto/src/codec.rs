//! `LedgerCodec`: prost encoding with one difference from tonic's `ProstCodec`: a message
//! that does not decode is `INVALID_ARGUMENT` with the stable code `malformed_request`, not
//! `INTERNAL`. On a server that message is the caller's request, so the fault is the caller's
//! (docs/api.md keeps `INTERNAL` for our own bugs). Every service of both protos uses it.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::BufferSettings;
use tonic::codec::Codec;
use tonic::codec::DecodeBuf;
use tonic::codec::Decoder;
use tonic::metadata::MetadataValue;
use tonic_prost::ProstCodec;
use tonic_prost::ProstEncoder;

use crate::error_code::ERROR_CODE_KEY;
use crate::error_code::ErrorCode;

/// Prost codec whose decode errors are the sender's fault (see the module doc).
#[derive(Debug, Clone)]
pub struct LedgerCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for LedgerCodec<T, U> {
    fn default() -> Self {
        LedgerCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for LedgerCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = LedgerDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        LedgerDecoder { _pd: PhantomData }
    }
}

/// Decodes `U`; an undecodable message is `malformed_request`.
#[derive(Debug)]
pub struct LedgerDecoder<U> {
    _pd: PhantomData<U>,
}

impl<U: Message + Default> Decoder for LedgerDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| malformed(&e.to_string()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// The status of a message that is not a valid protobuf encoding of its type.
pub fn malformed(detail: &str) -> Status {
    let mut status = Status::invalid_argument(format!(
        "the message is not a valid protobuf encoding of its type ({detail}); check the client's stubs against ledger.proto"
    ));
    let code = MetadataValue::from_static(ErrorCode::MalformedRequest.as_str());
    status.metadata_mut().insert(ERROR_CODE_KEY, code);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: an undecodable message maps to INVALID_ARGUMENT with `malformed_request`.
    #[test]
    fn malformed_message_is_invalid_argument() {
        let status = malformed("buffer underflow");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let code = status.metadata().get(ERROR_CODE_KEY).and_then(|v| v.to_str().ok());
        assert_eq!(code, Some("malformed_request"));
    }
}
