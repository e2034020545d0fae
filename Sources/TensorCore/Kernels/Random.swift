import ToolkitSupport

/// The project's one seedable generator (defined in ToolkitSupport so that targets without the
/// tensor library share it), visible to every module that imports TensorCore.
public typealias SplitMix64 = ToolkitSupport.SplitMix64
