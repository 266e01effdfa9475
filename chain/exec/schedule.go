package exec

// schedule groups transactions into levels: every transaction of a level conflicts
// with none other of it, and each one comes after every earlier transaction it
// conflicts with (write/write, read/write or write/read on a declared key). Running
// the levels in order, each in parallel, is therefore equivalent to block order.
// A barrier (a write of the rbac/ namespace, which every transaction may read)
// sits alone in its level, after everything before it and before everything after.
func schedule(ps []prepared) [][]int {
	lastWrite := map[string]int{} // key -> highest level that writes it
	lastRead := map[string]int{}  // key -> highest level that reads it
	var levels [][]int
	floor := 0 // every later transaction goes at or above this level
	for i := range ps {
		p := &ps[i]
		lvl := floor
		if p.barrier {
			lvl = max(lvl, len(levels))
		}
		for _, k := range p.reads {
			if w, ok := lastWrite[k]; ok {
				lvl = max(lvl, w+1)
			}
		}
		for _, k := range p.writes {
			if w, ok := lastWrite[k]; ok {
				lvl = max(lvl, w+1)
			}
			if r, ok := lastRead[k]; ok {
				lvl = max(lvl, r+1)
			}
		}
		for lvl >= len(levels) {
			levels = append(levels, nil)
		}
		levels[lvl] = append(levels[lvl], i)
		for _, k := range p.reads {
			if r, ok := lastRead[k]; !ok || r < lvl {
				lastRead[k] = lvl
			}
		}
		for _, k := range p.writes {
			lastWrite[k] = lvl
		}
		if p.barrier {
			floor = lvl + 1
		}
	}
	return levels
}
