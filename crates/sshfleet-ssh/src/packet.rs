//! The binary packet (RFC 4253 §6) before any keys are in use: length, padding length,
//! payload, random padding, no MAC. Sizes are checked before anything is allocated.

use ring::rand::{SecureRandom as _, SystemRandom};

use crate::Malformed;

/// The largest packet read: RFC 4253 §6.1 asks every implementation to take 35,000 bytes.
/// A server's KEXINIT and key-exchange reply are a few kilobytes.
pub const MAX_PACKET_BYTES: usize = 35_000;

/// The smallest padding RFC 4253 allows.
const MIN_PADDING: usize = 4;

/// The block size before encryption starts.
const BLOCK: usize = 8;

/// The number of bytes the packet announced by `header` (its first four bytes) still needs,
/// after those four.
pub(crate) fn announced_len(header: [u8; 4]) -> Result<usize, Malformed> {
    let len = usize::try_from(u32::from_be_bytes(header)).map_err(|_| Malformed::PacketTooLong)?;
    if len > MAX_PACKET_BYTES {
        return Err(Malformed::PacketTooLong);
    }
    if len < MIN_PADDING + 2 {
        return Err(Malformed::PacketTooShort);
    }
    Ok(len)
}

/// The payload of a packet body (everything after the length field).
pub(crate) fn payload(body: &[u8]) -> Result<&[u8], Malformed> {
    let (&padding, rest) = body.split_first().ok_or(Malformed::PacketTooShort)?;
    let padding = usize::from(padding);
    if padding < MIN_PADDING || padding >= rest.len() {
        return Err(Malformed::BadPadding);
    }
    Ok(&rest[..rest.len() - padding])
}

/// `payload` framed as one packet, with random padding.
pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let unpadded = 4 + 1 + payload.len();
    let mut padding = BLOCK - unpadded % BLOCK;
    if padding < MIN_PADDING {
        padding += BLOCK;
    }
    let body_len = 1 + payload.len() + padding;
    let mut packet = Vec::with_capacity(4 + body_len);
    packet.extend_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_be_bytes());
    // `padding` is at most BLOCK + MIN_PADDING, far below 256.
    packet.push(u8::try_from(padding).unwrap_or(u8::MAX));
    packet.extend_from_slice(payload);
    let start = packet.len();
    packet.resize(start + padding, 0);
    // Zero padding is what is left if the system has no randomness to give; before the keys
    // are in use the padding protects nothing.
    let _ = SystemRandom::new().fill(&mut packet[start..]);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_packet_reads_back_as_its_payload() {
        for len in 1..40 {
            let body = vec![7u8; len];
            let packet = frame(&body);
            assert_eq!(packet.len() % BLOCK, 0);
            let announced = announced_len([packet[0], packet[1], packet[2], packet[3]]);
            assert_eq!(announced, Ok(packet.len() - 4));
            assert_eq!(payload(&packet[4..]), Ok(&body[..]));
        }
    }

    #[test]
    fn oversized_and_undersized_lengths_are_refused_before_reading() {
        assert_eq!(
            announced_len(u32::MAX.to_be_bytes()),
            Err(Malformed::PacketTooLong)
        );
        assert_eq!(
            announced_len(35_001u32.to_be_bytes()),
            Err(Malformed::PacketTooLong)
        );
        assert_eq!(
            announced_len(3u32.to_be_bytes()),
            Err(Malformed::PacketTooShort)
        );
    }

    #[test]
    fn padding_longer_than_the_body_is_refused() {
        assert_eq!(payload(&[200, 1, 2, 3]), Err(Malformed::BadPadding));
        assert_eq!(payload(&[2, 1, 2, 3]), Err(Malformed::BadPadding));
        assert_eq!(payload(&[]), Err(Malformed::PacketTooShort));
    }
}
