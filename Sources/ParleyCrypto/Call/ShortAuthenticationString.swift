/// The short authentication string two people compare by voice to rule out a man in the middle:
/// six symbols of 6 bits each (36 bits), shown as emoji and as words (docs/PROTOCOL.md §5.1).
///
/// The 64 symbols are the emoji table of the Matrix SAS verification (a list chosen so that every picture
/// is easy to name and tell apart). Both ends derive the same 5 bytes from the call's key agreement;
/// the first 36 bits, most significant first, pick the six symbols.
public struct ShortAuthenticationString: Sendable, Hashable, CustomStringConvertible {
    /// Symbols shown.
    public static let symbolCount = 6
    /// Bits of the key agreement the string shows.
    public static let bits = 36

    /// The six symbol indexes (0–63).
    public let indexes: [Int]

    /// From the 5 derived bytes (only the first 36 bits are used).
    public init(bytes: [UInt8]) {
        precondition(bytes.count >= 5, "SAS needs 5 bytes")
        var value: UInt64 = 0
        for byte in bytes.prefix(5) { value = value << 8 | UInt64(byte) }
        value >>= 4  // 40 bits → the top 36
        indexes = (0..<Self.symbolCount).reversed().map { Int((value >> UInt64($0 * 6)) & 0x3F) }
    }

    /// The emoji, separated by spaces.
    public var emoji: String { indexes.map { Self.table[$0].emoji }.joined(separator: " ") }
    /// The symbols' names, separated by spaces (to read aloud).
    public var words: String { indexes.map { Self.table[$0].word }.joined(separator: " ") }
    /// `emoji (words)`.
    public var description: String { "\(emoji)  (\(words))" }

    /// The 64 symbols, in index order.
    public static let table: [(emoji: String, word: String)] = [
        ("🐶", "dog"), ("🐱", "cat"), ("🦁", "lion"), ("🐎", "horse"), ("🦄", "unicorn"), ("🐷", "pig"),
        ("🐘", "elephant"), ("🐰", "rabbit"), ("🐼", "panda"), ("🐓", "rooster"), ("🐧", "penguin"),
        ("🐢", "turtle"), ("🐟", "fish"), ("🐙", "octopus"), ("🦋", "butterfly"), ("🌷", "flower"),
        ("🌳", "tree"), ("🌵", "cactus"), ("🍄", "mushroom"), ("🌏", "globe"), ("🌙", "moon"), ("☁️", "cloud"),
        ("🔥", "fire"), ("🍌", "banana"), ("🍎", "apple"), ("🍓", "strawberry"), ("🌽", "corn"), ("🍕", "pizza"),
        ("🎂", "cake"), ("❤️", "heart"), ("😀", "smiley"), ("🤖", "robot"), ("🎩", "hat"), ("👓", "glasses"),
        ("🔧", "spanner"), ("🎅", "santa"), ("👍", "thumbs up"), ("☂️", "umbrella"), ("⌛", "hourglass"),
        ("⏰", "clock"), ("🎁", "gift"), ("💡", "light bulb"), ("📕", "book"), ("✏️", "pencil"),
        ("📎", "paperclip"), ("✂️", "scissors"), ("🔒", "lock"), ("🔑", "key"), ("🔨", "hammer"),
        ("☎️", "telephone"), ("🏁", "flag"), ("🚂", "train"), ("🚲", "bicycle"), ("✈️", "aeroplane"),
        ("🚀", "rocket"), ("🏆", "trophy"), ("⚽", "ball"), ("🎸", "guitar"), ("🎺", "trumpet"), ("🔔", "bell"),
        ("⚓", "anchor"), ("🎧", "headphones"), ("📁", "folder"), ("📌", "pin"),
    ]
}
