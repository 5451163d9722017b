import NIOCore
import ParleyWire

/// Hand-built STUN bytes for malformed-input tests: unlike ``STUNMessageWriter`` it will write any
/// length field, any attribute length, and attributes in any order.
struct RawSTUN {
    var type: UInt16
    var cookie: UInt32 = stunMagicCookie
    var transactionID = STUNTransactionID(high: 0x0102_0304_0506_0708, low: 0x090A_0B0C)
    /// Attributes as written: type, the length field, and the value (padded with zeros to 4 bytes).
    var attributes: [(type: UInt16, length: Int, value: [UInt8])] = []
    /// Replaces the computed header length field.
    var lengthField: Int?
    /// Append a correct FINGERPRINT after the attributes.
    var fingerprint = false

    init(type: UInt16 = STUNMessageType.bindingRequest.rawValue, cookie: UInt32 = stunMagicCookie) {
        self.type = type
        self.cookie = cookie
    }

    init(_ method: STUNMethod, _ messageClass: STUNClass, cookie: UInt32 = stunMagicCookie) {
        self.init(type: STUNMessageType(method: method, messageClass: messageClass).rawValue, cookie: cookie)
    }

    /// Adds an attribute whose length field matches its value.
    func with(_ type: STUNAttributeType, _ value: [UInt8] = []) -> RawSTUN {
        with(raw: type.rawValue, length: value.count, value)
    }

    /// Adds an attribute with an arbitrary length field.
    func with(raw type: UInt16, length: Int, _ value: [UInt8] = []) -> RawSTUN {
        var copy = self
        copy.attributes.append((type, length, value))
        return copy
    }

    func withFingerprint() -> RawSTUN {
        var copy = self
        copy.fingerprint = true
        return copy
    }

    func withLengthField(_ n: Int) -> RawSTUN {
        var copy = self
        copy.lengthField = n
        return copy
    }

    var bytes: [UInt8] {
        var body: [UInt8] = []
        for a in attributes {
            body += be16(a.type) + be16(UInt16(truncatingIfNeeded: a.length)) + a.value
            body += [UInt8](repeating: 0, count: (4 - a.value.count % 4) % 4)
        }
        var header = be16(type) + be16(0) + be32(cookie) + transactionID.bytes
        if fingerprint {
            let length = UInt16(truncatingIfNeeded: body.count + 8)
            header[2] = UInt8(length >> 8)
            header[3] = UInt8(length & 0xFF)
            var scratch = ByteBuffer()
            scratch.writeBytes(header + body)
            let crc = STUNDecoder.fingerprint(of: scratch, upTo: header.count + body.count)
            body += be16(STUNAttributeType.fingerprint.rawValue) + be16(4) + be32(crc)
        }
        let length = UInt16(truncatingIfNeeded: lengthField ?? body.count)
        header[2] = UInt8(length >> 8)
        header[3] = UInt8(length & 0xFF)
        return header + body
    }

    var buffer: ByteBuffer {
        var b = ByteBuffer()
        b.writeBytes(bytes)
        return b
    }
}

func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
