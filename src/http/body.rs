//! Body framing (RFC 9112 §6.3, §7.1): consumes body bytes through a cursor without copying them,
//! counting the payload. The chunked decoder is a state enum with one small step per state, in
//! the manner of hyper's `proto/h1/decode.rs`.

use super::head::Framing;
use crate::failure::ParseError;

/// A chunk extension (`;name=value…`) longer than this is `ParseError::ChunkExtTooLong`.
pub const MAX_CHUNK_EXT_BYTES: usize = 4096;
/// Trailer fields longer than this in all are `ParseError::TrailersTooLarge`.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// What one call to [`Body::decode`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of input used (framing and payload).
    pub consumed: usize,
    /// Payload bytes among them (what "content size" counts).
    pub payload: u64,
    /// The body is complete; bytes after `consumed` belong to the next response.
    pub done: bool,
}

/// The state of one response body being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

/// States of the chunked decoder (§7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunked {
    /// Hex digits of the chunk size; `digits` seen so far.
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size: optional whitespace and `;extensions` up to CR.
    Ext {
        size: u64,
        len: usize,
    },
    /// Expect LF ending the size line.
    SizeLf {
        size: u64,
    },
    /// Chunk payload bytes still to come.
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart {
        total: usize,
    },
    TrailerLine {
        total: usize,
    },
    TrailerLf {
        total: usize,
    },
    /// Expect the LF of the empty line that ends the message.
    EndLf,
    /// The message is complete.
    End,
}

impl Body {
    pub fn new(framing: Framing) -> Body {
        match framing {
            Framing::None | Framing::Length(0) => Body::Done,
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::Chunked(Chunked::Size { size: 0, digits: 0 }),
            Framing::UntilClose => Body::UntilClose,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, Body::Done)
    }

    /// Consumes as much of `input` as belongs to this body.
    pub fn decode(&mut self, input: &[u8]) -> Result<Progress, ParseError> {
        self.decode_into(input, &mut Sink::Skip)
    }

    /// As `decode`, also handing the payload bytes to `sink` (for checks and captures).
    pub fn decode_into(&mut self, input: &[u8], sink: &mut Sink<'_>) -> Result<Progress, ParseError> {
        match self {
            Body::Done => Ok(Progress { done: true, ..Progress::default() }),
            Body::UntilClose => {
                sink.put(input);
                Ok(Progress { consumed: input.len(), payload: input.len() as u64, done: false })
            }
            Body::Length(remaining) => {
                let take = (*remaining).min(input.len() as u64);
                sink.put(&input[..take as usize]);
                *remaining -= take;
                let done = *remaining == 0;
                if done {
                    *self = Body::Done;
                }
                Ok(Progress { consumed: take as usize, payload: take, done })
            }
            Body::Chunked(state) => {
                let progress = decode_chunked(state, input, sink)?;
                if progress.done {
                    *self = Body::Done;
                }
                Ok(progress)
            }
        }
    }
}

/// Where payload bytes go: nowhere (the hot path), or into a buffer up to a limit.
pub enum Sink<'a> {
    Skip,
    Keep { into: &'a mut Vec<u8>, limit: usize },
}

impl Sink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if let Sink::Keep { into, limit } = self {
            let room = limit.saturating_sub(into.len());
            into.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }
}

fn decode_chunked(state: &mut Chunked, input: &[u8], sink: &mut Sink<'_>) -> Result<Progress, ParseError> {
    let mut progress = Progress::default();
    while progress.consumed < input.len() {
        let rest = &input[progress.consumed..];
        if let Chunked::Data { remaining } = state {
            let take = (*remaining).min(rest.len() as u64);
            sink.put(&rest[..take as usize]);
            *remaining -= take;
            progress.consumed += take as usize;
            progress.payload += take;
            if *remaining == 0 {
                *state = Chunked::DataCr;
            }
            continue;
        }
        *state = step(*state, rest[0])?;
        progress.consumed += 1;
        if *state == Chunked::End {
            progress.done = true;
            return Ok(progress);
        }
    }
    Ok(progress)
}

/// Advances the decoder by one framing byte.
fn step(state: Chunked, byte: u8) -> Result<Chunked, ParseError> {
    use Chunked::*;
    Ok(match state {
        Size { size, digits } => match hex_value(byte) {
            Some(v) => {
                if size >> 60 != 0 {
                    return Err(ParseError::ChunkSizeOverflow);
                }
                Size { size: size << 4 | u64::from(v), digits: digits.saturating_add(1) }
            }
            None if digits == 0 => return Err(ParseError::ChunkSize),
            None => size_line_end(size, 0, byte)?,
        },
        Ext { size, len } => {
            if len >= MAX_CHUNK_EXT_BYTES {
                return Err(ParseError::ChunkExtTooLong);
            }
            size_line_end(size, len + 1, byte)?
        }
        SizeLf { size } => match (byte, size) {
            (b'\n', 0) => TrailerStart { total: 0 },
            (b'\n', size) => Data { remaining: size },
            _ => return Err(ParseError::ChunkSize),
        },
        Data { .. } => unreachable!("data is consumed in bulk"),
        DataCr => expect(byte, b'\r', DataLf, ParseError::ChunkData)?,
        DataLf => expect(byte, b'\n', Size { size: 0, digits: 0 }, ParseError::ChunkData)?,
        TrailerStart { .. } if byte == b'\r' => EndLf,
        TrailerStart { total } | TrailerLine { total } => {
            if total >= MAX_TRAILER_BYTES {
                return Err(ParseError::TrailersTooLarge);
            }
            match byte {
                b'\r' => TrailerLf { total: total + 1 },
                b'\n' => return Err(ParseError::Trailer),
                _ => TrailerLine { total: total + 1 },
            }
        }
        TrailerLf { total } => expect(byte, b'\n', TrailerStart { total: total + 1 }, ParseError::Trailer)?,
        EndLf => expect(byte, b'\n', End, ParseError::Trailer)?,
        End => unreachable!("the decoder stops at the end"),
    })
}

/// After the size digits: whitespace or an extension until CR.
fn size_line_end(size: u64, len: usize, byte: u8) -> Result<Chunked, ParseError> {
    Ok(match byte {
        b'\r' => Chunked::SizeLf { size },
        b'\n' => return Err(ParseError::ChunkSize),
        b';' | b' ' | b'\t' => Chunked::Ext { size, len },
        _ if len > 0 => Chunked::Ext { size, len },
        _ => return Err(ParseError::ChunkSize),
    })
}

fn expect(byte: u8, want: u8, next: Chunked, err: ParseError) -> Result<Chunked, ParseError> {
    if byte == want {
        Ok(next)
    } else {
        Err(err)
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces cut at the given offsets; returns (consumed, payload, done).
    fn feed(framing: Framing, input: &[u8], cuts: &[usize]) -> Result<(usize, u64, bool), ParseError> {
        let mut body = Body::new(framing);
        let (mut consumed, mut payload) = (0, 0);
        let mut arrivals = cuts.to_vec();
        arrivals.push(input.len());
        for end in arrivals {
            // Bytes arrived but not consumed are presented again, as conn does.
            let progress = body.decode(&input[consumed..end])?;
            consumed += progress.consumed;
            payload += progress.payload;
            if progress.done {
                return Ok((consumed, payload, true));
            }
        }
        Ok((consumed, payload, body.is_done()))
    }

    fn at_every_split(framing: Framing, input: &[u8]) -> Result<(usize, u64, bool), ParseError> {
        let whole = feed(framing, input, &[])?;
        for cut in 0..=input.len() {
            assert_eq!(feed(framing, input, &[cut]), Ok(whole), "split at {cut}");
        }
        let bytewise: Vec<usize> = (1..input.len()).collect();
        assert_eq!(feed(framing, input, &bytewise), Ok(whole), "byte by byte");
        Ok(whole)
    }

    #[test]
    fn content_length() {
        let input = b"hello world, next";
        assert_eq!(at_every_split(Framing::Length(11), input), Ok((11, 11, true)));
        assert_eq!(at_every_split(Framing::Length(0), input), Ok((0, 0, true)));
        assert_eq!(at_every_split(Framing::None, input), Ok((0, 0, true)));
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let input = b"5;name=val\r\nhello\r\nA \r\n0123456789\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\nNEXT";
        let len = input.len() - 4;
        assert_eq!(at_every_split(Framing::Chunked, input), Ok((len, 15, true)));
        let plain = b"3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(at_every_split(Framing::Chunked, plain), Ok((plain.len(), 3, true)));
    }

    #[test]
    fn chunked_incomplete_is_not_done() {
        let input = b"3\r\nabc\r\n0\r\n\r";
        assert_eq!(feed(Framing::Chunked, input, &[]), Ok((input.len(), 3, false)));
    }

    #[test]
    fn until_close_consumes_everything() {
        assert_eq!(feed(Framing::UntilClose, b"abc", &[1]), Ok((3, 3, false)));
    }

    #[test]
    fn chunked_errors() {
        let err = |input: &[u8]| feed(Framing::Chunked, input, &[]).unwrap_err();
        assert_eq!(err(b"x\r\n"), ParseError::ChunkSize);
        assert_eq!(err(b"\r\n"), ParseError::ChunkSize);
        assert_eq!(err(b"3\nabc"), ParseError::ChunkSize);
        assert_eq!(err(b"3\r\nabcX"), ParseError::ChunkData);
        assert_eq!(err(b"3\r\nabc\rX"), ParseError::ChunkData);
        assert_eq!(err(b"11111111111111111\r\n"), ParseError::ChunkSizeOverflow);
        assert_eq!(err(b"0\r\nX: 1\n"), ParseError::Trailer);
        assert_eq!(err(b"0\r\n\rX"), ParseError::Trailer);
        let long_ext = format!("1;{}\r\n", "e".repeat(MAX_CHUNK_EXT_BYTES + 1));
        assert_eq!(err(long_ext.as_bytes()), ParseError::ChunkExtTooLong);
        let endless = format!("0\r\n{}", "X-T: v\r\n".repeat(MAX_TRAILER_BYTES / 8 + 1));
        assert_eq!(err(endless.as_bytes()), ParseError::TrailersTooLarge);
        // Largest size that fits is accepted as a size (the data then never ends here).
        assert!(feed(Framing::Chunked, b"ffffffffffffffff\r\n", &[]).is_ok());
    }
}
