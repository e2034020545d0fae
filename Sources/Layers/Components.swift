/// The registries recipes compose from. A new variant is one file with a `make` factory plus one
/// line here.
public enum Components {
    nonisolated(unsafe) public static var positions = ComponentRegistry<any PositionalEncoding>("position encoding", [
        "learned": LearnedPositions.make,
        "rope": RotaryEmbedding.make,
        "alibi": ALiBiPositions.make,
        "none": NoPositions.make,
    ])

    nonisolated(unsafe) public static var ropeScalings = ComponentRegistry<any RoPEScaling>("RoPE scaling", [
        "linear": LinearRoPEScaling.make,
        "ntk": NTKRoPEScaling.make,
        "yarn": YaRNScaling.make,
        "llama3": Llama3RoPEScaling.make,
    ])

    nonisolated(unsafe) public static var norms = ComponentRegistry<any Normalization>("normalization", [
        "layernorm": LayerNorm.make,
        "rmsnorm": RMSNorm.make,
    ])

    nonisolated(unsafe) public static var feedForwards = ComponentRegistry<any FeedForward>("feed-forward", [
        "gelu": GELUMLP.make,
        "swiglu": SwiGLUMLP.make,
        "geglu": SwiGLUMLP.makeGeGLU,
        "moe": MoE.make,
    ])
}
