//! A bounded reader of the bytes of a registry-framed message: varints (plain and zig-zag, as Avro
//! and Protobuf write them), lengths checked against the bytes left, and Protobuf's field tags.

/// The most fields one message may have when read without its type.
const MAX_ITEMS: usize = 1_000_000;

/// Reads a message's bytes from the front; every read says where it ran out.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the first byte.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }
    /// Whether every byte was read.
    pub fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }
    /// The offset of the next byte.
    pub fn at(&self) -> usize {
        self.at
    }
    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at..]
    }
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "the message ends at byte {} where {n} more were expected",
                    self.bytes.len()
                )
            })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    /// An unsigned varint of at most 64 bits.
    pub fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.take(1)?[0];
            if shift == 63 && b > 1 {
                return Err(format!("a varint longer than 64 bits at byte {}", self.at));
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("a varint longer than 10 bytes at byte {}", self.at))
    }
    /// A zig-zag varint (Avro's int and long, Confluent's message indexes).
    pub fn zigzag(&mut self) -> Result<i64, String> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }
    /// A Protobuf field tag: the field number and the wire type.
    pub fn tag(&mut self) -> Result<(u32, u8), String> {
        let at = self.at;
        let tag = self.varint()?;
        let number = u32::try_from(tag >> 3).ok().filter(|n| *n > 0);
        match number {
            Some(n) => Ok((n, (tag & 7) as u8)),
            None => Err(format!("a field tag {tag} at byte {at}")),
        }
    }
    /// A length-delimited Protobuf value.
    pub fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| format!("a length {n} at byte {}", self.at))?;
        self.take(n)
    }
    /// Skips a Protobuf value of `wire_type` (groups are refused).
    pub fn skip(&mut self, wire_type: u8) -> Result<(), String> {
        match wire_type {
            0 => self.varint().map(|_| ()),
            1 => self.take(8).map(|_| ()),
            2 => self.bytes().map(|_| ()),
            5 => self.take(4).map(|_| ()),
            other => Err(format!(
                "wire type {other} (groups are not read) at byte {}",
                self.at
            )),
        }
    }
    /// Reads every field without knowing the type: the framing must hold.
    pub fn skip_all(&mut self, items: &mut usize) -> Result<(), String> {
        while !self.done() {
            *items += 1;
            if *items > MAX_ITEMS {
                return Err(format!("more than {} fields in one message", MAX_ITEMS));
            }
            let (_, wire_type) = self.tag()?;
            self.skip(wire_type)?;
        }
        Ok(())
    }
}

/// Test support: `n` as an unsigned varint.
#[cfg(test)]
pub(crate) fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}
