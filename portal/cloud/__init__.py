"""The portal's one gateway to OpenStack.

Every openstacksdk call the portal makes goes through a function in this package, named
`<resource>_<action>`, that returns plain dataclasses and raises the exceptions in `errors`.
Views, services and tasks never touch the SDK, so the SDK can change (or be faked in unit
tests) at one place, and every cloud error reaches users in the same words.
"""
