/// Placeholder until the diff engine lands.
enum FicusDiffPlaceholder {}
