//! The codec of every request/reply stream: a frame is its length (4 bytes,
//! little-endian) and then its bytes. Each message is already encoded when it gets here,
//! so the frame only has to carry it: the bytes are written as they are and read straight
//! into the buffer the message is decoded from. Wrapping them in CBOR copied every frame
//! once more on each side, which a 1 MiB chunk paid on every hop to its holders.

use std::io;

use async_trait::async_trait;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{request_response, StreamProtocol};

/// What a frame's buffer starts at before its bytes arrive.
const FIRST_READ: usize = 64 << 10;

/// Length-prefixed frames, refused past the protocol's caps before a byte of the body is
/// read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameCodec {
    request_maximum: usize,
    reply_maximum: usize,
}

impl FrameCodec {
    pub(crate) fn new(request_maximum: usize, reply_maximum: usize) -> Self {
        FrameCodec { request_maximum, reply_maximum }
    }
}

#[async_trait]
impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.request_maximum).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.reply_maximum).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, frame: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &frame, self.request_maximum).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, frame: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &frame, self.reply_maximum).await
    }
}

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, maximum: usize) -> io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    io.read_exact(&mut length).await?;
    let length = usize::try_from(u32::from_le_bytes(length)).map_err(|_| too_long(u64::MAX, maximum))?;
    if length > maximum {
        return Err(too_long(length as u64, maximum));
    }
    // The buffer grows with what arrives, never ahead of it by more than `FIRST_READ` or
    // double: a peer that announces a large frame and sends nothing holds no memory.
    let mut frame = Vec::with_capacity(length.min(FIRST_READ));
    io.take(length as u64).read_to_end(&mut frame).await?;
    if frame.len() != length {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a frame cut short"));
    }
    Ok(frame)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, frame: &[u8], maximum: usize) -> io::Result<()> {
    if frame.len() > maximum {
        return Err(too_long(frame.len() as u64, maximum));
    }
    let length = u32::try_from(frame.len()).map_err(|_| too_long(frame.len() as u64, maximum))?;
    io.write_all(&length.to_le_bytes()).await?;
    io.write_all(frame).await
}

fn too_long(length: u64, maximum: usize) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("a frame of {length} bytes, over the cap of {maximum}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use request_response::Codec;

    #[tokio::test]
    async fn a_frame_reads_back_whole_and_one_over_the_cap_is_refused_unread() {
        let protocol = StreamProtocol::new("/acre/test/1");
        let mut codec = FrameCodec::new(8, 4);
        let mut wire = Vec::new();
        codec.write_request(&protocol, &mut wire, b"12345678".to_vec()).await.expect("write");
        assert_eq!(wire.len(), 4 + 8);
        let read = codec.read_request(&protocol, &mut wire.as_slice()).await.expect("read");
        assert_eq!(read, b"12345678");

        // The same frame read as a reply, whose cap is 4: refused from its length alone.
        let refused = codec.read_response(&protocol, &mut wire.as_slice()).await;
        assert_eq!(refused.map_err(|e| e.kind()), Err(io::ErrorKind::InvalidData));
        assert!(codec.write_response(&protocol, &mut Vec::new(), vec![0; 5]).await.is_err());

        // A frame cut short is an error, not a short message.
        let cut = &wire[..wire.len() - 1];
        assert!(codec.read_request(&protocol, &mut &cut[..]).await.is_err());
        let empty: &[u8] = &[];
        assert!(codec.read_request(&protocol, &mut &empty[..]).await.is_err());
    }
}
