//! Cancel, remove and sending a flow again.
