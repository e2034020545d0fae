import Layers
import Optimizers
import TensorCore
import Testing

@Suite struct ParameterGroupTests {
    /// A Qwen/GPT-2-like set of names and shapes.
    static func modelParameters() -> [NamedParameter] {
        let specs: [(String, [Int])] = [
            ("model.embed_tokens.weight", [10, 4]),
            ("model.layers.0.input_layernorm.weight", [4]),
            ("model.layers.0.self_attn.q_proj.weight", [4, 4]),
            ("model.layers.0.mlp.down_proj.weight", [4, 8]),
            ("model.layers.0.mlp.down_proj.bias", [4]),
            ("transformer.wpe.weight", [6, 4]),
            ("transformer.h.0.ln_1.weight", [4]),
            ("lm_head.weight", [10, 4]),
        ]
        return specs.map { ($0.0, Parameter(Tensor(zeros: $0.1))) }
    }

    func names(_ g: OptimizerGroup?) -> [String] { g?.parameters.map(\.name) ?? [] }

    @Test func muonForHiddenMatricesAdamWForTheRest() throws {
        let opt = try MultiOptimizer.muonWithAdamW(
            Self.modelParameters(), muonLearningRate: 0.02, muonWeightDecay: 0.1,
            adamLearningRate: 3e-4, adamWeightDecay: 0.01)
        #expect(opt.groups.map(\.label) == ["muon", "adamw", "adamw_no_decay"])
        #expect(
            names(opt.group("muon")) == [
                "model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight",
            ])
        #expect(names(opt.group("adamw")) == ["lm_head.weight"])
        #expect(
            names(opt.group("adamw_no_decay")) == [
                "model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                "model.layers.0.mlp.down_proj.bias", "transformer.wpe.weight",
                "transformer.h.0.ln_1.weight",
            ])
        #expect(opt.group("muon") is Muon && opt.group("adamw") is AdamW)
        #expect(opt.group("muon")?.weightDecay == 0.1 && opt.group("adamw")?.weightDecay == 0.01)
        #expect(opt.group("adamw_no_decay")?.weightDecay == 0)
        #expect(opt.parameters.count == 8)
    }

    @Test func adamWDecaySplitAndLearningRatePerGroup() throws {
        let opt = try MultiOptimizer.adamW(
            Self.modelParameters(), learningRate: 1e-3, weightDecay: 0.1)
        #expect(
            names(opt.group("adamw")) == [
                "model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight",
                "lm_head.weight",
            ])
        #expect(opt.group("adamw_no_decay")?.parameters.count == 5)
        opt.setLearningRateMultiplier(0.5)
        #expect(opt.groups.allSatisfy { $0.learningRate == 5e-4 && $0.baseLearningRate == 1e-3 })
        opt.groups[0].learningRate = 7e-4
        #expect(opt.groups[0].learningRate == 7e-4 && opt.groups[1].learningRate == 5e-4)
    }

    @Test func customFiltersAndFrozenParameters() throws {
        let params = Self.modelParameters()
        params[7].parameter.isTrainable = false  // lm_head frozen
        let opt = try MultiOptimizer.muonWithAdamW(
            params, useMuon: .nameContains(["q_proj"]), noDecay: .rank(below: 2))
        #expect(names(opt.group("muon")) == ["model.layers.0.self_attn.q_proj.weight"])
        #expect(
            names(opt.group("adamw")) == [
                "model.embed_tokens.weight", "model.layers.0.mlp.down_proj.weight",
                "transformer.wpe.weight",
            ])
        #expect(!opt.parameters.contains { $0.name == "lm_head.weight" })
    }

    @Test func parameterInTwoGroupsIsRejected() throws {
        let params = Self.modelParameters()
        let a = try SGD([params[2]], learningRate: 0.1)
        let b = try AdamW([params[2], params[3]], learningRate: 0.1)
        #expect(throws: OptimizerError.duplicateParameter(name: params[2].name)) {
            try MultiOptimizer([a, b])
        }
        #expect(throws: OptimizerError.self) { try SGD([params[0], params[0]], learningRate: 0.1) }
    }

    @Test func invalidConfigurationsThrow() {
        let params = Self.modelParameters()
        #expect(throws: OptimizerError.self) { try Muon([params[1]]) }  // 1-D
        #expect(throws: OptimizerError.self) { try SGD(params, learningRate: -1) }
        #expect(throws: OptimizerError.self) { try SGD(params, learningRate: 0.1, nesterov: true) }
        #expect(throws: OptimizerError.self) { try Adam(params, beta1: 1) }
        #expect(throws: OptimizerError.self) { try AdamW(params, weightDecay: -0.1) }
    }
}
