"""The middle floor: parsing off the loop, intake, discovery, the vote desk, leases, the tally's report."""
