package xmpptest

// CapsInfo is capsInfo, for tests.
var CapsInfo = capsInfo
