//! Which master serves a hash slot, as a `CLUSTER NODES` answer says: for operators'
//! figures (the spread of an app over masters), read at the time of asking. The client
//! routes commands by its own map; this never does.

use super::replica_counts::key_slot;

/// `host:port` of the master whose slot ranges hold the slot of `key`, or None when no
/// line of `nodes` claims it (a slot being moved is listed under its owner's ranges; the
/// `[slot->-id]` markers beside them are not ranges).
pub(crate) fn owner_of_key(nodes: &str, key: &str) -> Option<String> {
    let slot = usize::from(key_slot(key.as_bytes()));
    nodes.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let flags = fields.get(2)?;
        if !flags.split(',').any(|f| f == "master") || flags.contains("noaddr") {
            return None;
        }
        let owns = fields.get(8..)?.iter().any(|range| {
            if range.starts_with('[') {
                return false;
            }
            let (low, high) = range.split_once('-').unwrap_or((range, range));
            matches!((low.parse::<usize>(), high.parse::<usize>()),
                (Ok(low), Ok(high)) if (low..=high).contains(&slot))
        });
        owns.then(|| fields.get(1)?.split('@').next().map(str::to_owned))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
a1 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 [93->-b2]
b2 10.0.0.2:7001@17001 master - 0 0 2 connected 5461-10922 12000
c3 10.0.0.3:7002@17002 master,fail - 0 0 3 connected 10923-11999 12001-16383
d4 10.0.0.4:7003@17003 slave a1 0 0 1 connected
e5 :0@0 master,noaddr - 0 0 0 disconnected
";

    #[test]
    fn the_owner_is_the_master_whose_ranges_hold_the_slot() {
        // "{a}" hashes to slot 15495, "{b}" to 3300, "{c}" to 7365.
        assert_eq!(key_slot(b"{a}x"), 15495);
        assert_eq!(
            owner_of_key(NODES, "{a}x").as_deref(),
            Some("10.0.0.3:7002")
        );
        assert_eq!(owner_of_key(NODES, "{b}").as_deref(), Some("10.0.0.1:7000"));
        assert_eq!(owner_of_key(NODES, "{c}").as_deref(), Some("10.0.0.2:7001"));
    }

    #[test]
    fn a_single_slot_range_and_an_unclaimed_slot() {
        let single = "b2 h:1@2 master - 0 0 2 connected 3300\n";
        assert_eq!(owner_of_key(single, "{b}").as_deref(), Some("h:1"));
        assert_eq!(owner_of_key(single, "{a}"), None);
        assert_eq!(owner_of_key("", "{a}"), None);
        assert_eq!(owner_of_key("garbage line\n", "{a}"), None);
    }
}
