"""The payloads of the Swift test peer's producer and consumer roles
(Tests/Bus1TestPeer/Pattern.swift), so Python can send and check the same bytes:
message `seq` has a size from its number, bytes from a ramp that starts at
seq % 251, and seq in its first 8 bytes (little-endian)."""
RAMP = bytes(range(256)) * (((4 << 20) + 512) // 256 + 1)


def size(seq):
    if seq % 1000 == 999:
        return 4 << 20
    if seq % 100 == 99:
        return 64 << 10
    if seq % 10 == 9:
        return 4096
    return 1 + (seq * 7919) % 512


def payload(seq):
    start = seq % 251
    data = bytearray(RAMP[start:start + size(seq)])
    if len(data) >= 8:
        data[:8] = seq.to_bytes(8, "little")
    return bytes(data)
