import Foundation
import Layers
import Optimizers
import TensorCore
import Testing
import _TestSupport

@Suite struct ConfigurationTests {
    func decode<T: Decodable>(_ json: String, as: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(json.utf8))
    }

    @Test func missingKeysTakeDefaults() throws {
        let c: OptimizerConfiguration = try decode(
            #"{"algorithm": "muon", "learning_rate": 0.001}"#)
        var expected = OptimizerConfiguration()
        expected.algorithm = "muon"
        expected.learningRate = 0.001
        #expect(c == expected)
        let round: OptimizerConfiguration = try decode(
            String(decoding: try JSONEncoder().encode(c), as: UTF8.self))
        #expect(round == c)
        #expect(
            Set(OptimizerConfiguration.CodingKeys.allCases.map(\.rawValue)).contains(
                "muon_lr_adjustment"))
    }

    @Test(arguments: [
        ("sgd", ["sgd", "sgd_no_decay"]), ("adam", ["adam", "adam_no_decay"]),
        ("adamw", ["adamw", "adamw_no_decay"]), ("muon", ["muon", "adamw", "adamw_no_decay"]),
    ])
    func buildsGroups(_ algorithm: String, _ labels: [String]) throws {
        let c: OptimizerConfiguration = try decode(
            #"{"algorithm": "\#(algorithm)", "weight_decay": 0.05}"#)
        let opt = try c.makeOptimizer(for: ParameterGroupTests.modelParameters())
        #expect(opt.groups.map(\.label) == labels)
        #expect(opt.groups.map(\.weightDecay).contains(0.05) == true)
        #expect(opt.parameters.count == 8)
    }

    @Test func muonConfigurationRoutesByPatterns() throws {
        let c: OptimizerConfiguration = try decode(
            #"{"algorithm": "muon", "muon_exclude_patterns": ["embed", "lm_head", "wpe", "down_proj"], "muon_weight_decay": 0.2, "muon_lr_adjustment": "match_rms_adamw"}"#
        )
        let opt = try c.makeOptimizer(for: ParameterGroupTests.modelParameters())
        let muon = try #require(opt.group("muon") as? Muon)
        #expect(muon.parameters.map(\.name) == ["model.layers.0.self_attn.q_proj.weight"])
        #expect(muon.weightDecay == 0.2 && muon.adjustment == .matchRMSAdamW)
    }

    @Test func invalidValuesNameTheKey() throws {
        let c: OptimizerConfiguration = try decode(#"{"beta2": 1.0}"#)
        #expect(
            throws: OptimizerError.invalidHyperparameter(
                name: "beta2", value: 1, reason: "must be in [0, 1)")
        ) {
            try c.validate()
        }
        #expect(throws: DecodingError.self) {
            try decode(#"{"algorithm": "lion"}"#, as: OptimizerConfiguration.self)
        }
    }

    /// Every optimizer and schedule name builds through the catalog; unknown names are refused by it.
    @Test func catalogBuildsEveryNamedKind() throws {
        let params: [NamedParameter] = [("w", Parameter(Tensor.ones([2, 2])))]
        for kind in OptimizerCatalog.kinds {
            var c = OptimizerConfiguration()
            c.algorithm = kind.name
            #expect(try c.makeOptimizer(for: params).groups.count >= 1, "\(kind.name)")
        }
        #expect(OptimizerCatalog.optimizer("lion") == nil && OptimizerCatalog.schedule("step") == nil)
        let wsd = try OptimizerCatalog.schedule("wsd")!.build(10, 100, 0, 0.2)
        #expect(wsd.decayStart == 80 && wsd.multiplier(at: 100) == 0 && wsd.multiplier(at: 0) == 0.1)
        let cosine = try OptimizerCatalog.schedule("cosine")!.build(0, 50, 0.1, 0.2)
        #expect(abs(cosine.multiplier(at: 50) - 0.1) < Tolerance.double)
        #expect(throws: OptimizerError.self) { try OptimizerCatalog.schedule("linear")!.build(0, 100, 2, 0.2) }
    }
}
