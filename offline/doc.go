// Package offline implements XEP-0160: Best Practices for Handling Offline
// Messages, so that nothing sent to an absent user is lost (RFC 6121
// §8.5.2.2.1, the "store" choice).
//
// [Service.Register] adds the disco#info feature "msgoffline" and three
// router hooks:
//
//   - Undeliverable: a message to a local account with no resource to take
//     it is stored, and the hook returns Handled only once the row is
//     committed, so a crash after that cannot lose it. Stored are messages
//     of type chat or normal (or none) that carry something worth keeping: a
//     body, or any payload other than metadata (chat states, XEP-0334
//     hints, XEP-0359 ids, thread, delay), or a XEP-0334
//     <store xmlns='urn:xmpp:hints'/> hint; a <no-store/> hint always
//     wins. groupchat, headline and error messages are never stored. A
//     message that is not stored goes on down the hook chain, and the
//     router answers the sender with <service-unavailable/>. When storage
//     fails (the database is down) the hook returns router.Failed and the
//     sender gets wait/<internal-server-error/> instead, so that its
//     client sends again rather than report the recipient unavailable;
//     the failures are logged once per burst, not once per message. A
//     commit whose outcome was lost may have stored the message anyway,
//     so a retry can deliver it twice, never zero times.
//   - OnAvailable: when a resource sends initial presence with a
//     non-negative priority, the stored messages are delivered to it,
//     oldest first, each with a XEP-0203 <delay xmlns='urn:xmpp:delay'/>
//     from the server's domain stamped with the time it was stored
//     (XEP-0082, UTC). A row is deleted only after its message has been
//     written to the client's socket (router.Session.DeliverThen): a crash
//     in between delivers it twice, never zero times. Delivery goes in
//     batches no larger than [Limits].BatchStanzas and BatchBytes, each
//     written before the next is read from storage, so memory stays
//     bounded and the session's send queue never overflows. One goroutine
//     at a time delivers to an account, so two resources logging in
//     together do not both get the same message.
//   - OnUnavailable: forgets the resource.
//
// A message stored while the account came online (the router found no
// resource a moment before) is delivered at once rather than at the next
// login.
//
// # Limits
//
// [Limits].MaxMessages bounds the messages kept per account, and
// MaxBytes the bytes of their stanzas as stored; a message that would
// take the account past either is refused: the sender gets
// <service-unavailable/> (RFC 6121 §8.5.2.1.1) and nothing is stored.
// The count, the sum and the insert are one transaction, with the
// account's row locked, so concurrent messages cannot both squeeze in. Messages older than MaxAge are deleted by a sweep every
// SweepInterval, run by the goroutine [Service.Start] starts and
// [Service.Stop] ends.
//
// # What it does not do
//
// It does not implement XEP-0013 (flexible offline message retrieval) or
// XEP-0313 (archives): messages are pushed at login and then gone. A
// resource that raises its priority from negative to non-negative with an
// updated presence gets the stored messages at its next initial presence,
// not then. Messages delivered while stored ones are being flushed may
// arrive in between them.
package offline
