/// Placeholder until the rollout controllers land.
enum FicusRolloutPlaceholder {}
