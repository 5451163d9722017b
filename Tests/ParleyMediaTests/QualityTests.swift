import XCTest

@testable import ParleyMedia

final class ArrivalStatsTests: XCTestCase {
    /// RFC 3550 §6.4.1 on a hand-worked sequence: transits 0, 5, 0, 10 ms give |D| = 5, 5, 10 ms and
    /// J = 5/16 = 0.3125, then 0.3125 + (5 − 0.3125)/16 = 0.60546875, then
    /// 0.60546875 + (10 − 0.60546875)/16 = 1.192626953125 ms.
    func testInterarrivalJitterOnKnownSequence() {
        var stats = ArrivalStats()
        let extra: [UInt64] = [0, 5_000, 0, 10_000]
        for (index, delay) in extra.enumerated() {
            let frame = UInt64(index)
            stats.record(sequence: frame, frame: frame, arrival: 500_000 + frame * 20_000 + delay)
        }
        XCTAssertEqual(stats.jitterMilliseconds, 1.192626953125, accuracy: 1e-9)
    }

    func testJitterConvergesToConstantDeviation() {
        var stats = ArrivalStats()
        for frame in UInt64(0)..<1000 {
            stats.record(sequence: frame, frame: frame, arrival: frame * 20_000 + (frame % 2 == 0 ? 0 : 8_000))
        }
        XCTAssertEqual(stats.jitterMilliseconds, 8, accuracy: 1e-6)
    }

    func testJitterIsZeroForSteadyArrivalsWithRandomStartFrame() {
        var stats = ArrivalStats()
        let start: UInt64 = 0xFFFF_FFFF_FFFF_FF00  // media time near wrap: only differences count
        for index in UInt64(0)..<100 {
            stats.record(sequence: index, frame: start &+ index, arrival: 7_000 + index * 20_000)
        }
        XCTAssertEqual(stats.jitterMilliseconds, 0)
    }

    func testLossFractionFromExtendedHighestSequence() {
        var stats = ArrivalStats()
        for sequence in UInt64(1000)..<1100 where sequence % 10 != 3 {
            stats.record(sequence: sequence, frame: sequence, arrival: sequence * 20_000)
        }
        XCTAssertEqual(stats.expected, 100)
        XCTAssertEqual(stats.received, 90)
        XCTAssertEqual(stats.cumulativeLost, 10)
        XCTAssertEqual(stats.lossFraction, 0.1, accuracy: 1e-12)
        XCTAssertEqual(stats.takeIntervalLossFraction(), 0.1, accuracy: 1e-12)
        for sequence in UInt64(1100)..<1200 {
            stats.record(sequence: sequence, frame: sequence, arrival: sequence * 20_000)
        }
        XCTAssertEqual(stats.takeIntervalLossFraction(), 0)
        // Duplicates make cumulative loss negative, but the fraction never goes below zero.
        var duplicated = ArrivalStats()
        for _ in 0..<3 { duplicated.record(sequence: 0, frame: 0, arrival: 0) }
        XCTAssertEqual(duplicated.cumulativeLost, -2)
        XCTAssertEqual(duplicated.lossFraction, 0)
    }

    func testBurstMeasure() {
        // Isolated losses, one in ten: bursts of one, BurstR = 1/(p + q) = 1/(1/9 + 1) = 0.9.
        var isolated = ArrivalStats()
        for sequence in UInt64(0)..<1000 where sequence % 10 != 5 {
            isolated.record(sequence: sequence, frame: sequence, arrival: sequence * 20_000)
        }
        XCTAssertEqual(isolated.meanBurstLength, 1, accuracy: 1e-12)
        XCTAssertEqual(isolated.burstRatio, 0.9, accuracy: 0.01)

        // Three lost in every twenty: bursts of three, p = 1/17, q = 1/3, BurstR = 1/(1/17 + 1/3) ≈ 2.55.
        var bursty = ArrivalStats()
        for sequence in UInt64(0)..<2000 where !(5..<8).contains(sequence % 20) {
            bursty.record(sequence: sequence, frame: sequence, arrival: sequence * 20_000)
        }
        XCTAssertEqual(bursty.meanBurstLength, 3, accuracy: 1e-12)
        XCTAssertEqual(bursty.burstRatio, 1 / (1.0 / 17 + 1.0 / 3), accuracy: 0.02)

        // No loss: BurstR is 1 by definition.
        XCTAssertEqual(ArrivalStats().burstRatio, 1)
    }

    func testReorderedPacketsAreNotCountedAsBursts() {
        var stats = ArrivalStats()
        var order = Array(UInt64(0)..<200)
        for index in stride(from: 0, to: 198, by: 7) { order.swapAt(index, index + 2) }
        for sequence in order { stats.record(sequence: sequence, frame: sequence, arrival: sequence * 20_000) }
        XCTAssertEqual(stats.lossFraction, 0)
        XCTAssertEqual(stats.meanBurstLength, 0)
    }
}

final class RTTEstimatorTests: XCTestCase {
    func testSmoothingFollowsRFC6298() {
        var rtt = RTTEstimator()
        XCTAssertNil(rtt.smoothed)
        // Sent at 1.000 s, held 5 ms by the peer, back at 1.105 s: 100 ms.
        XCTAssertEqual(rtt.record(echoedTime: 1_000_000, holdTime: 5_000, now: 1_105_000), 100_000)
        XCTAssertEqual(rtt.smoothed, 100_000)
        XCTAssertEqual(rtt.variation, 50_000)
        XCTAssertEqual(rtt.upperBound, 300_000)
        // 120 ms: RTTVAR = ¾·50 + ¼·|100 − 120| = 42.5 ms; SRTT = ⅞·100 + ⅛·120 = 102.5 ms.
        XCTAssertEqual(rtt.record(echoedTime: 2_000_000, holdTime: 0, now: 2_120_000), 120_000)
        XCTAssertEqual(rtt.variation!, 42_500, accuracy: 1e-9)
        XCTAssertEqual(rtt.smoothed!, 102_500, accuracy: 1e-9)
        XCTAssertEqual(rtt.smoothedMilliseconds!, 102.5, accuracy: 1e-9)
        rtt.record(sample: 80_000)
        XCTAssertEqual(rtt.latest, 80_000)
        XCTAssertEqual(rtt.minimum, 80_000)
        XCTAssertEqual(rtt.samples, 3)
    }

    func testInconsistentEchoesAreRejected() {
        var rtt = RTTEstimator()
        XCTAssertNil(rtt.record(echoedTime: 1_000_000, holdTime: 50_000, now: 1_020_000))
        XCTAssertNil(rtt.record(echoedTime: 2_000_000, holdTime: 0, now: 1_000_000))
        XCTAssertEqual(rtt.rejected, 2)
        XCTAssertNil(rtt.smoothed)
        XCTAssertEqual(rtt.record(echoedTime: 1_000_000, holdTime: 20_000, now: 1_020_000), 0)
    }

    func testConvergesToSteadyRTT() {
        var rtt = RTTEstimator()
        var random = SeededGenerator(state: 7)
        for index in UInt64(0)..<500 {
            let sent = index * 100_000
            let network = 60_000 + UInt64.random(in: 0...4_000, using: &random)
            rtt.record(echoedTime: sent, holdTime: 1_000, now: sent + 1_000 + network)
        }
        XCTAssertEqual(rtt.smoothedMilliseconds!, 62, accuracy: 1.5)
        XCTAssertGreaterThanOrEqual(rtt.minimum!, 60_000)
    }
}

final class EModelTests: XCTestCase {
    let model = EModel()

    func testCleanCallIsTheDefaultRating() {
        XCTAssertEqual(model.rating(mouthToEarMilliseconds: 0, concealedPercent: 0), 93.2, accuracy: 1e-12)
        // 1 + 0.035·93.2 + 93.2·33.2·6.8·7e-6 = 4.409...
        XCTAssertEqual(model.meanOpinionScore(mouthToEarMilliseconds: 0, concealedPercent: 0), 4.41, accuracy: 0.005)
        XCTAssertEqual(model.rating(mouthToEarMilliseconds: 100, concealedPercent: 0), 93.2, accuracy: 1e-12)
    }

    func testDelayImpairmentKnownPoints() {
        XCTAssertEqual(EModel.delayImpairment(mouthToEarMilliseconds: 80), 0)
        XCTAssertEqual(EModel.delayImpairment(mouthToEarMilliseconds: 100), 0)
        // Ta = 150 ms: X = log2 1.5 = 0.585; Idd = 25·((1 + X⁶)^⅙ − 3(1 + (X/3)⁶)^⅙ + 2) ≈ 0.163.
        XCTAssertEqual(EModel.delayImpairment(mouthToEarMilliseconds: 150), 0.163, accuracy: 0.002)
        // Ta = 200 ms: X = 1; Idd = 25·(2^⅙ − 3(1 + 3⁻⁶)^⅙ + 2) = 25·(1.12246 − 3.00069 + 2) ≈ 3.04.
        XCTAssertEqual(EModel.delayImpairment(mouthToEarMilliseconds: 200), 3.044, accuracy: 0.002)
        // Ta = 400 ms: X = 2; Idd = 25·(65^⅙ − 3(1 + (2/3)⁶)^⅙ + 2) ≈ 24.07.
        XCTAssertEqual(EModel.delayImpairment(mouthToEarMilliseconds: 400), 24.07, accuracy: 0.02)
    }

    func testPacketLossKnownPoint() {
        // Ppl 5 %, Bpl 20, Ie 0, random loss: Ie,eff = 95·5/(5 + 20) = 19, R = 74.2,
        // MOS = 1 + 0.035·74.2 + 74.2·14.2·25.8·7e-6 = 3.787.
        XCTAssertEqual(model.effectiveEquipmentImpairment(concealedPercent: 5), 19, accuracy: 1e-12)
        XCTAssertEqual(model.rating(mouthToEarMilliseconds: 0, concealedPercent: 5), 74.2, accuracy: 1e-9)
        let mos = model.meanOpinionScore(mouthToEarMilliseconds: 0, concealedPercent: 5)
        XCTAssertEqual(mos, 3.787, accuracy: 0.001)
        // Bursty loss (BurstR 2) hurts more: 95·5/(2.5 + 20) = 21.1.
        let bursty = model.effectiveEquipmentImpairment(concealedPercent: 5, burstRatio: 2)
        XCTAssertEqual(bursty, 95 * 5 / 22.5, accuracy: 1e-9)
    }

    func testMonotonicInLossAndDelay() {
        var previous = Double.infinity
        for ppl in stride(from: 0.0, through: 50, by: 0.5) {
            let mos = model.meanOpinionScore(mouthToEarMilliseconds: 150, concealedPercent: ppl)
            XCTAssertLessThan(mos, previous)
            previous = mos
        }
        previous = Double.infinity
        for ta in stride(from: 101.0, through: 800, by: 10) {
            let rating = model.rating(mouthToEarMilliseconds: ta, concealedPercent: 1)
            XCTAssertLessThan(rating, previous)
            previous = rating
        }
    }

    func testMOSMappingClamps() {
        XCTAssertEqual(EModel.meanOpinionScore(rating: -5), 1)
        XCTAssertEqual(EModel.meanOpinionScore(rating: 0), 1)
        XCTAssertEqual(EModel.meanOpinionScore(rating: 100), 4.5)
        XCTAssertEqual(EModel.meanOpinionScore(rating: 120), 4.5)
        XCTAssertEqual(EModel.meanOpinionScore(rating: 50), 1 + 1.75 + 50 * -10 * 50 * 7e-6, accuracy: 1e-12)
    }
}

final class CallQualityTests: XCTestCase {
    func testStatusLine() {
        let quality = CallQuality(
            rttMilliseconds: 102,
            jitterMilliseconds: 8.12,
            lossPercent: 5,
            concealedPercent: 0.4,
            fecRecovered: 12,
            playoutDelayMilliseconds: 49
        )
        // 102/2 + 49 + 20 + 40 = 160 ms mouth to ear.
        XCTAssertEqual(quality.mouthToEarMilliseconds, 160, accuracy: 1e-9)
        let expectedMOS = EModel().meanOpinionScore(mouthToEarMilliseconds: 160, concealedPercent: 0.4)
        XCTAssertEqual(quality.meanOpinionScore, expectedMOS, accuracy: 1e-12)
        XCTAssertEqual(
            quality.description,
            "rtt 102 ms  jitter 8.1 ms  loss 5.0%  concealed 0.4%  delay 160 ms  MOS 4.36"
        )
    }

    func testFixedFormatting() {
        XCTAssertEqual(CallQuality.fixed(4.205, 2), "4.21")
        XCTAssertEqual(CallQuality.fixed(0.04, 1), "0.0")
        XCTAssertEqual(CallQuality.fixed(9.96, 1), "10.0")
        XCTAssertEqual(CallQuality.fixed(-1.25, 1), "-1.3")
        XCTAssertEqual(CallQuality.fixed(101.6, 0), "102")
        XCTAssertEqual(CallQuality.fixed(.nan, 1), "-")
    }

    func testSnapshotFromEstimators() {
        var rtt = RTTEstimator()
        rtt.record(sample: 80_000)
        var arrivals = ArrivalStats()
        for sequence in UInt64(0)..<100 where sequence != 50 {
            arrivals.record(sequence: sequence, frame: sequence, arrival: sequence * 20_000)
        }
        var playout = JitterBuffer.Statistics()
        playout.played = 99
        playout.concealed = 1
        playout.recoveredByFEC = 0
        playout.currentDelay = 40_000
        let quality = CallQuality(rtt: rtt, arrivals: arrivals, playout: playout)
        XCTAssertEqual(quality.rttMilliseconds, 80)
        XCTAssertEqual(quality.lossPercent, 1, accuracy: 1e-9)
        XCTAssertEqual(quality.concealedPercent, 1, accuracy: 1e-9)
        XCTAssertEqual(quality.playoutDelayMilliseconds, 40)
        XCTAssertEqual(quality.mouthToEarMilliseconds, 40 + 40 + 20 + 40)
        XCTAssertGreaterThan(quality.meanOpinionScore, 4)
    }
}

final class RateControllerTests: XCTestCase {
    func testLossRaisesFECAndHeavyLossLowersBitrate() {
        var controller = RateController()
        XCTAssertEqual(controller.current.bitrate, 32_000)
        XCTAssertEqual(controller.current.expectedLossPercent, 0)

        // 4.2 % loss: FEC expects 5 %, bitrate untouched.
        var decision = controller.update(lossFraction: 0.042, bandwidthEstimate: nil, now: 0)
        XCTAssertTrue(decision.changed)
        XCTAssertEqual(decision.reason, .fec)
        XCTAssertEqual(decision.bitrate, 32_000)
        XCTAssertEqual(decision.expectedLossPercent, 5)
        XCTAssertTrue(decision.fecEnabled)

        // 20 % loss half a second later: held back by the one-change-per-second rule.
        decision = controller.update(lossFraction: 0.2, bandwidthEstimate: nil, now: 500_000)
        XCTAssertFalse(decision.changed)
        XCTAssertEqual(decision.bitrate, 32_000)
        XCTAssertEqual(decision.expectedLossPercent, 5)

        // A second on: 32 → 24 kb/s, FEC 20 %; then 18, then the 16 kb/s floor for heavy loss.
        decision = controller.update(lossFraction: 0.2, bandwidthEstimate: nil, now: 1_000_000)
        XCTAssertEqual(decision, .init(bitrate: 24_000, expectedLossPercent: 20, changed: true, reason: .loss))
        XCTAssertEqual(controller.update(lossFraction: 0.2, bandwidthEstimate: nil, now: 2_000_000).bitrate, 18_000)
        XCTAssertEqual(controller.update(lossFraction: 0.2, bandwidthEstimate: nil, now: 3_000_000).bitrate, 16_000)
        decision = controller.update(lossFraction: 0.2, bandwidthEstimate: nil, now: 4_000_000)
        XCTAssertFalse(decision.changed)
        XCTAssertEqual(decision.bitrate, 16_000)

        // Expected loss is capped at 40 %.
        decision = controller.update(lossFraction: 0.7, bandwidthEstimate: nil, now: 5_000_000)
        XCTAssertEqual(decision.expectedLossPercent, 40)
    }

    func testRecoveryAndHysteresis() {
        var controller = RateController()
        _ = controller.update(lossFraction: 0.2, bandwidthEstimate: nil, now: 0)  // 24 kb/s, 20 %
        // 7 % loss: between the thresholds, so the bitrate holds; FEC falls to 7 %.
        var decision = controller.update(lossFraction: 0.07, bandwidthEstimate: nil, now: 1_000_000)
        XCTAssertEqual(decision.bitrate, 24_000)
        XCTAssertEqual(decision.expectedLossPercent, 7)
        // 6 %: within the 2-point hysteresis, nothing changes.
        decision = controller.update(lossFraction: 0.06, bandwidthEstimate: nil, now: 2_000_000)
        XCTAssertFalse(decision.changed)
        XCTAssertEqual(decision.expectedLossPercent, 7)
        // Clean: climb 15 % a step back to 32 kb/s and no further, FEC off.
        decision = controller.update(lossFraction: 0, bandwidthEstimate: nil, now: 3_000_000)
        XCTAssertEqual(decision, .init(bitrate: 27_600, expectedLossPercent: 0, changed: true, reason: .recovery))
        XCTAssertFalse(decision.fecEnabled)
        XCTAssertEqual(controller.update(lossFraction: 0, bandwidthEstimate: nil, now: 4_000_000).bitrate, 31_740)
        XCTAssertEqual(controller.update(lossFraction: 0, bandwidthEstimate: nil, now: 5_000_000).bitrate, 32_000)
        XCTAssertFalse(controller.update(lossFraction: 0, bandwidthEstimate: nil, now: 6_000_000).changed)
    }

    func testBandwidthEstimateCapsBitrate() {
        var controller = RateController()
        var decision = controller.update(lossFraction: 0, bandwidthEstimate: 20_000, now: 0)
        XCTAssertEqual(decision, .init(bitrate: 17_000, expectedLossPercent: 0, changed: true, reason: .bandwidth))
        // Recovery stays within 85 % of the estimate: 17 000 → min(19 550, 17 000) is no change.
        decision = controller.update(lossFraction: 0, bandwidthEstimate: 20_000, now: 2_000_000)
        XCTAssertFalse(decision.changed)
        // Floor at 8 kb/s.
        decision = controller.update(lossFraction: 0, bandwidthEstimate: 5_000, now: 3_000_000)
        XCTAssertEqual(decision.bitrate, 8_000)
        // Bandwidth back: climb again.
        decision = controller.update(lossFraction: 0, bandwidthEstimate: 1_000_000, now: 4_000_000)
        XCTAssertEqual(decision.bitrate, 9_200)
        // The ceiling holds whatever the preference.
        let greedy = RateController(configuration: .init(preferredBitrate: 200_000))
        XCTAssertEqual(greedy.current.bitrate, 64_000)
    }
}
