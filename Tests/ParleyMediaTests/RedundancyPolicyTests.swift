import XCTest

@testable import ParleyMedia

final class RedundancyPolicyTests: XCTestCase {
    func testOnAtHeavyLossOffAtLightLossOrCongestion() {
        var policy = RedundancyPolicy()
        XCTAssertFalse(policy.enabled)
        XCTAssertFalse(policy.update(lossFraction: 0.08, congested: false), "under the 10 % threshold")
        XCTAssertFalse(policy.update(lossFraction: 0.11, congested: false), "average 9.5 %")
        XCTAssertTrue(policy.update(lossFraction: 0.12, congested: false), "average 10.75 %")
        XCTAssertTrue(policy.update(lossFraction: 0.0, congested: false), "hysteresis: average 5.4 %, stays on down to 4 %")
        XCTAssertFalse(policy.update(lossFraction: 0.0, congested: false), "average 2.7 %")
        XCTAssertFalse(policy.update(lossFraction: 0.09, congested: false), "average 5.8 %: stays off up to 10 %")
        XCTAssertTrue(policy.update(lossFraction: 0.3, congested: false))
        XCTAssertFalse(policy.update(lossFraction: 0.3, congested: true), "a queue building: no extra bits")
        XCTAssertTrue(policy.update(lossFraction: 0.3, congested: false))
        XCTAssertTrue(policy.update(lossFraction: .nan, congested: false), "NaN counts as 0: average 13.5 %")
    }

    func testTheFirstReportCountsWholeAndOneBadSecondOnALightPathDoesNotSwitch() {
        var heavy = RedundancyPolicy()
        XCTAssertTrue(heavy.update(lossFraction: 0.2, congested: false), "a 20 % path: on at the first report")
        var light = RedundancyPolicy()
        for loss in [0.04, 0.06, 0.02, 0.12, 0.04, 0.06] {
            XCTAssertFalse(light.update(lossFraction: loss, congested: false), "\(loss)")
        }
    }
}
