package openfire

import (
	"context"
	"encoding/xml"
	"fmt"
	"html"
	"sort"
	"strconv"
	"strings"

	"xmppd.dev/xmppd/migration"
	"xmppd.dev/xmppd/storage"
)

// readSharedGroups reads Openfire's groups that are shown in rosters:
// ofGroupProp sharedRoster.showInRoster is everybody, onlyGroup (the
// group's members and those of sharedRoster.groupList, comma-separated) or
// nobody (not shared: not carried).
func (r *reader) readSharedGroups(ctx context.Context) error {
	if !r.has("ofgroup") {
		return nil
	}
	if err := r.need("ofgroup", "groupname", "description"); err != nil {
		return err
	}
	groups := map[string]*migration.SharedGroup{}
	var order []string
	err := r.src.scan(ctx, "ofgroup", []string{"groupname", "description"}, func(v []*string) error {
		if v[0] != nil {
			groups[*v[0]] = &migration.SharedGroup{Name: *v[0], Description: str(v[1])}
			order = append(order, *v[0])
		}
		return nil
	})
	if err != nil {
		return err
	}
	props := map[string]map[string]string{}
	if r.has("ofgroupprop", "groupname", "name", "propvalue") {
		err := r.src.scan(ctx, "ofgroupprop", []string{"groupname", "name", "propvalue"}, func(v []*string) error {
			if v[0] != nil && v[1] != nil && v[2] != nil {
				if props[*v[0]] == nil {
					props[*v[0]] = map[string]string{}
				}
				props[*v[0]][*v[1]] = *v[2]
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if r.has("ofgroupuser", "groupname", "username") {
		seen := map[string]bool{}
		// The administrator flag does not matter to rosters; an admin is
		// also a member.
		err := r.src.scan(ctx, "ofgroupuser", []string{"groupname", "username"}, func(v []*string) error {
			if v[0] == nil || v[1] == nil || groups[*v[0]] == nil {
				return nil
			}
			j := r.userJID(*v[1])
			if !seen[*v[0]+"\x00"+j] {
				seen[*v[0]+"\x00"+j] = true
				groups[*v[0]].Members = append(groups[*v[0]].Members, j)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	sort.Strings(order)
	// A group named in a shown group's groupList matters for its members
	// even when it is not shown itself.
	referenced := map[string]bool{}
	for _, name := range order {
		if strings.TrimSpace(props[name]["sharedRoster.showInRoster"]) == "onlyGroup" {
			for _, other := range strings.Split(props[name]["sharedRoster.groupList"], ",") {
				referenced[strings.TrimSpace(other)] = true
			}
		}
	}
	for _, name := range order {
		g, p := groups[name], props[name]
		switch show := strings.TrimSpace(p["sharedRoster.showInRoster"]); show {
		case "everybody":
			g.ShowTo = "everybody"
		case "onlyGroup":
			g.ShowTo = "members"
			for _, other := range strings.Split(p["sharedRoster.groupList"], ",") {
				if other = strings.TrimSpace(other); other == "" {
					continue
				}
				if groups[other] == nil {
					r.skip("shared group %s: shown to group %s, which does not exist; left out", name, other)
					continue
				}
				g.ShowTo = "groups"
				g.ShowToGroups = append(g.ShowToGroups, other)
			}
		case "", "nobody":
			if !referenced[name] {
				continue // not a shared roster group
			}
		default:
			r.skip("group %s: unknown sharedRoster.showInRoster %q, not shared", name, show)
			if !referenced[name] {
				continue
			}
		}
		g.DisplayName = p["sharedRoster.displayName"]
		if g.DisplayName == "" {
			g.DisplayName = name
		}
		sort.Strings(g.Members)
		r.data.SharedGroups = append(r.data.SharedGroups, *g)
	}
	return nil
}

// Openfire's MUC affiliations (org.jivesoftware.openfire.muc.Affiliation).
var affiliations = map[int]string{10: "owner", 20: "admin", 30: "member", 40: "outcast"}

// allowPM is ofMucRoom.allowpm (MUCPersistenceManager; NULL reads as 0).
var allowPM = map[int]string{0: "anyone", 1: "participants", 2: "moderators", 3: "none"}

// defaultHistory is Openfire's default history.maxNumber.
const defaultHistory = 25

func (r *reader) readRooms(ctx context.Context) error {
	if !r.has("ofmucservice") || !r.has("ofmucroom") {
		return nil
	}
	if err := r.need("ofmucservice", "serviceid", "subdomain"); err != nil {
		return err
	}
	services := map[string]string{} // serviceID -> service domain
	err := r.src.scan(ctx, "ofmucservice", []string{"serviceid", "subdomain"}, func(v []*string) error {
		if v[0] != nil && v[1] != nil {
			services[strings.TrimSpace(*v[0])] = strings.ToLower(*v[1]) + "." + r.rw.to
		}
		return nil
	})
	if err != nil {
		return err
	}
	// History kept per service (ofMucServiceProp history.type/maxNumber).
	history := map[string]int{}
	if r.has("ofmucserviceprop", "serviceid", "name", "propvalue") {
		types := map[string]string{}
		err := r.src.scan(ctx, "ofmucserviceprop", []string{"serviceid", "name", "propvalue"}, func(v []*string) error {
			if v[0] == nil || v[1] == nil || v[2] == nil {
				return nil
			}
			id := strings.TrimSpace(*v[0])
			switch *v[1] {
			case "history.type":
				types[id] = strings.TrimSpace(*v[2])
			case "history.maxNumber":
				if n, err := strconv.Atoi(strings.TrimSpace(*v[2])); err == nil && n >= 0 {
					history[id] = n
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for id, t := range types {
			if t == "none" {
				history[id] = 0
			}
		}
	}

	cols := []string{"serviceid", "roomid", "creationdate", "name", "naturalname", "description", "canchangesubject",
		"maxusers", "publicroom", "moderated", "membersonly", "roompassword", "candiscoverjid", "logenabled", "subject"}
	if err := r.need("ofmucroom", cols...); err != nil {
		return err
	}
	withPM := r.has("ofmucroom", "allowpm")
	if withPM {
		cols = append(cols, "allowpm")
	}
	rooms := map[string]*migration.Room{} // by roomID
	err = r.src.scan(ctx, "ofmucroom", cols, func(v []*string) error {
		service, ok := services[strings.TrimSpace(str(v[0]))]
		if !ok || v[3] == nil {
			r.skip("room %s of unknown MUC service %s not kept", str(v[3]), str(v[0]))
			return nil
		}
		room := &migration.Room{MUCRoom: storage.MUCRoom{
			JID:           strings.ToLower(*v[3]) + "@" + service,
			Service:       service,
			CreatedAt:     millis(v[2]),
			Name:          str(v[4]),
			Description:   str(v[5]),
			ChangeSubject: flag(v[6]),
			MaxUsers:      num(v[7]),
			Public:        flag(v[8]),
			Moderated:     flag(v[9]),
			MembersOnly:   flag(v[10]),
			Password:      str(v[11]),
			Whois:         "moderators",
			Archive:       flag(v[13]),
			AllowPM:       "anyone",
			HistoryLength: defaultHistory,
		}}
		if n, ok := history[strings.TrimSpace(str(v[0]))]; ok {
			room.HistoryLength = n
		}
		if flag(v[12]) {
			room.Whois = "anyone"
		}
		if withPM {
			if pm, ok := allowPM[num(v[15])]; ok {
				room.AllowPM = pm
			}
		}
		room.Subject, room.SubjectNick = subject(str(v[14]))
		rooms[strings.TrimSpace(str(v[1]))] = room
		return nil
	})
	if err != nil {
		return err
	}

	affs := map[string]map[string]string{} // roomID -> JID -> affiliation
	setAff := func(id, jid, aff string) {
		if affs[id] == nil {
			affs[id] = map[string]string{}
		}
		if _, ok := affs[id][jid]; !ok || aff != "member" {
			affs[id][jid] = aff
		}
	}
	if r.has("ofmucaffiliation", "roomid", "jid", "affiliation") {
		err := r.src.scan(ctx, "ofmucaffiliation", []string{"roomid", "jid", "affiliation"}, func(v []*string) error {
			id := strings.TrimSpace(str(v[0]))
			if rooms[id] == nil || v[1] == nil {
				return nil
			}
			a, ok := affiliations[num(v[2])]
			if !ok {
				r.skip("room %s: affiliation %s of %s unknown, not kept", rooms[id].JID, str(v[2]), *v[1])
				return nil
			}
			setAff(id, r.userJID(*v[1]), a)
			return nil
		})
		if err != nil {
			return err
		}
	}
	if r.has("ofmucmember", "roomid", "jid", "nickname") {
		err := r.src.scan(ctx, "ofmucmember", []string{"roomid", "jid", "nickname"}, func(v []*string) error {
			id := strings.TrimSpace(str(v[0]))
			room := rooms[id]
			if room == nil || v[1] == nil {
				return nil
			}
			j := r.userJID(*v[1])
			setAff(id, j, "member")
			if nick := str(v[2]); nick != "" {
				if room.Nicks == nil {
					room.Nicks = map[string]string{}
				}
				room.Nicks[j] = nick
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := r.readRoomLogs(ctx, rooms); err != nil {
		return err
	}
	for id, room := range rooms {
		for j, a := range affs[id] {
			room.Affiliations = append(room.Affiliations, storage.MUCAffiliation{JID: j, Affiliation: a})
		}
		sort.Slice(room.Affiliations, func(i, k int) bool { return room.Affiliations[i].JID < room.Affiliations[k].JID })
		// Openfire keeps no creator; the first owner stands in.
		for _, a := range room.Affiliations {
			if a.Affiliation == "owner" {
				room.Creator = a.JID
				break
			}
		}
		r.data.Rooms = append(r.data.Rooms, *room)
	}
	sort.Slice(r.data.Rooms, func(i, k int) bool { return r.data.Rooms[i].JID < r.data.Rooms[k].JID })
	return nil
}

// subject returns a room's subject and the nick that set it. Since schema
// 38 ofMucRoom.subject holds the subject message stanza; before, the text.
func subject(raw string) (text, nick string) {
	if !strings.HasPrefix(strings.TrimSpace(raw), "<message") {
		return raw, ""
	}
	var m struct {
		From    string `xml:"from,attr"`
		Subject string `xml:"subject"`
	}
	if err := xml.Unmarshal([]byte(raw), &m); err != nil {
		return raw, ""
	}
	if i := strings.IndexByte(m.From, '/'); i >= 0 {
		nick = m.From[i+1:]
	}
	return m.Subject, nick
}

func (r *reader) readRoomLogs(ctx context.Context, rooms map[string]*migration.Room) error {
	if !r.has("ofmucconversationlog") {
		return nil
	}
	cols := []string{"roomid", "sender", "nickname", "logtime", "subject", "body"}
	if err := r.need("ofmucconversationlog", cols...); err != nil {
		return err
	}
	withStanza := r.has("ofmucconversationlog", "stanza", "messageid")
	if withStanza {
		cols = append(cols, "messageid", "stanza")
	}
	type entry struct {
		order int64
		msg   storage.MUCMessage
	}
	logs := map[string][]entry{}
	err := r.src.scan(ctx, "ofmucconversationlog", cols, func(v []*string) error {
		id := strings.TrimSpace(str(v[0]))
		if rooms[id] == nil || v[4] == nil && v[5] == nil {
			return nil // no text: nothing a client would see
		}
		m := storage.MUCMessage{Nick: str(v[2]), Sender: r.rw.jid(str(v[1])), Stamp: millis(v[3])}
		var order int64
		var payload []byte
		if withStanza {
			order, _ = strconv.ParseInt(strings.TrimSpace(str(v[6])), 10, 64)
			if v[7] != nil {
				if attrs, inner, ok := stanzaParts(r.rw.xml([]byte(*v[7]))); ok {
					m.ID = attrs["id"]
					payload = inner
				}
			}
		}
		if payload == nil {
			var b strings.Builder
			if v[4] != nil {
				fmt.Fprintf(&b, "<subject>%s</subject>", html.EscapeString(*v[4]))
			}
			if v[5] != nil {
				fmt.Fprintf(&b, "<body>%s</body>", html.EscapeString(*v[5]))
			}
			payload = []byte(b.String())
		}
		m.Payload = payload
		logs[id] = append(logs[id], entry{order, m})
		return nil
	})
	if err != nil {
		return err
	}
	for id, list := range logs {
		sort.SliceStable(list, func(i, k int) bool {
			a, b := list[i], list[k]
			if !a.msg.Stamp.Equal(b.msg.Stamp) {
				return a.msg.Stamp.Before(b.msg.Stamp)
			}
			return a.order < b.order
		})
		room := rooms[id]
		for i, e := range list {
			e.msg.Seq = int64(i + 1)
			room.Log = append(room.Log, e.msg)
		}
	}
	return nil
}
