/// Corral's version, the same for `corral` and `corrald` (`--version`, the
/// API's health answer).
public enum CorralVersion {
    public static let current = "0.2.0"
}
