//! Livepeer wire messages, signatures, probabilistic-micropayment tickets and TicketBroker bindings.
